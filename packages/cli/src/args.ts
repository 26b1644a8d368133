export interface CliArgs {
  config: string;
  check: boolean;
  printSchema: boolean;
  version: boolean;
  help: boolean;
}

export class UsageError extends Error {}

export const USAGE = `Usage: wslb [--config FILE] [--check] [--print-schema] [--version] [--help]

  -c, --config FILE   JSON config file (default ./wslb.json)
      --check         validate the config and its plugins, then exit (0 valid, 2 invalid)
      --print-schema  print the JSON Schema of the config file, built-in plugins included
  -v, --version       print the version
  -h, --help          print this help

Signals: SIGTERM/SIGINT drain live tunnels then exit 0 (a second one exits at once);
SIGHUP reloads the config file without dropping live tunnels.
Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage or config.`;

export function parseArgs(argv: readonly string[]): CliArgs {
  const args: CliArgs = {
    config: 'wslb.json',
    check: false,
    printSchema: false,
    version: false,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    switch (name) {
      case '-c':
      case '--config': {
        const value = eq > 0 && name !== arg ? arg.slice(eq + 1) : argv[++i];
        if (!value) throw new UsageError(`${name} needs a file name`);
        args.config = value;
        break;
      }
      case '--check':
        args.check = true;
        break;
      case '--print-schema':
        args.printSchema = true;
        break;
      case '-v':
      case '--version':
        args.version = true;
        break;
      case '-h':
      case '--help':
        args.help = true;
        break;
      default:
        throw new UsageError(`unknown argument "${arg}"`);
    }
  }
  return args;
}
