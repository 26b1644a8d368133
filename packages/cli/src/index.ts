export { main, EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME } from './main.js';
export { loadConfig, ConfigError, type LoadedConfig } from './load-config.js';
export { parseArgs, USAGE, type CliArgs } from './args.js';
export { fullSchema, BUILT_IN_PLUGINS } from './print-schema.js';
export { CLI_VERSION } from './version.js';
