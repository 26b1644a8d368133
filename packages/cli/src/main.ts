import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Proxy, WslbError, createProxy } from '@wslb/core';
import { USAGE, UsageError, parseArgs } from './args.js';
import { ConfigError, checkConfigPlugins, loadConfig } from './load-config.js';
import { fullSchema } from './print-schema.js';
import { CLI_VERSION } from './version.js';

/** The binary's own folder: built-in plugins resolve from here whatever the config's folder. */
export const CLI_DIR = dirname(fileURLToPath(import.meta.url));

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_CONFIG = 2;

/** Faults of the config's plugin set: fixed by editing the config (or installing), so exit 2. */
const CONFIG_FAULTS = new Set([
  'WSLB_ERR_CONFIG_INVALID',
  'WSLB_ERR_PLUGIN_NOT_FOUND',
  'WSLB_ERR_PLUGIN_INVALID',
  'WSLB_ERR_PLUGIN_DUPLICATE',
  'WSLB_ERR_PLUGIN_DEPENDENCY',
  'WSLB_ERR_PLUGIN_CORE_VERSION',
]);

function printStartError(err: unknown): number {
  if (!(err instanceof WslbError)) {
    process.stderr.write(`wslb: ${(err as Error).message}\n`);
    return EXIT_RUNTIME;
  }
  process.stderr.write(`wslb: ${err.code}: ${err.message}\n`);
  return CONFIG_FAULTS.has(err.code) ? EXIT_CONFIG : EXIT_RUNTIME;
}

function printConfigError(err: ConfigError): void {
  process.stderr.write(`wslb: ${err.message}\n`);
  for (const issue of err.issues) process.stderr.write(`  ${issue.path}: ${issue.message}\n`);
}

/** Runs the binary; resolves with the exit code once the proxy has stopped (or at once). */
export async function main(argv: readonly string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`wslb: ${err.message}\n\n${USAGE}\n`);
    return EXIT_CONFIG;
  }
  if (args.help) {
    process.stdout.write(`wslb ${CLI_VERSION}: a WebSocket load balancer you can program\n\n${USAGE}\n`);
    return EXIT_OK;
  }
  if (args.version) {
    process.stdout.write(`${CLI_VERSION}\n`);
    return EXIT_OK;
  }
  if (args.printSchema) {
    process.stdout.write(`${JSON.stringify(await fullSchema(CLI_DIR), null, 2)}\n`);
    return EXIT_OK;
  }

  let loaded;
  try {
    loaded = await loadConfig(args.config, [CLI_DIR]);
  } catch (err) {
    if (err instanceof ConfigError) {
      printConfigError(err);
      return EXIT_CONFIG;
    }
    throw err;
  }
  if (args.check) {
    try {
      await checkConfigPlugins(loaded.config, [CLI_DIR]);
    } catch (err) {
      return printStartError(err);
    }
    process.stdout.write(`${loaded.file}: ok\n`);
    return EXIT_OK;
  }

  let proxy: Proxy;
  try {
    proxy = createProxy(loaded.config, { pluginPaths: [CLI_DIR] });
    await proxy.ready();
  } catch (err) {
    return printStartError(err);
  }
  return run(proxy, args.config);
}

async function run(proxy: Proxy, configPath: string): Promise<number> {
  const log = proxy.log;
  process.on('uncaughtException', (err) => {
    // One faulty connection or plugin must not take the others down.
    log.error({ err, code: 'WSLB_ERR_UNCAUGHT' }, 'uncaught exception');
  });
  process.on('unhandledRejection', (err) => {
    log.error({ err, code: 'WSLB_ERR_UNCAUGHT' }, 'unhandled rejection');
  });
  try {
    await proxy.listen();
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'cannot start');
    await proxy.close({ drain: 0 });
    return EXIT_RUNTIME;
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting at once');
        resolve(EXIT_RUNTIME);
        return;
      }
      stopping = true;
      log.info({ signal }, 'stopping');
      proxy.close().then(
        () => resolve(EXIT_OK),
        (err: unknown) => {
          log.error({ err }, 'close failed');
          resolve(EXIT_RUNTIME);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGHUP', () => {
      reloadFromFile(proxy, configPath).catch((err: unknown) => log.error({ err }, 'reload failed'));
    });
  });
}

/** SIGHUP: an invalid file is reported and the running config stays. */
async function reloadFromFile(proxy: Proxy, configPath: string): Promise<void> {
  const log = proxy.log;
  let loaded;
  try {
    loaded = await loadConfig(configPath, [CLI_DIR]);
  } catch (err) {
    if (err instanceof ConfigError) {
      log.error(
        { code: 'WSLB_ERR_CONFIG_INVALID', issues: err.issues.map((i) => `${i.path}: ${i.message}`) },
        `reload rejected, keeping the running config: ${err.message}`,
      );
      return;
    }
    throw err;
  }
  try {
    await proxy.reload(loaded.config);
  } catch (err) {
    log.error(
      { code: (err as WslbError).code, err: (err as Error).message },
      'reload rejected, keeping the running config',
    );
  }
}
