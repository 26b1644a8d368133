export { main, EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME } from './main.js';
export { loadConfig, ConfigError, type LoadedConfig } from './load-config.js';
export { parseArgs, USAGE, type CliArgs } from './args.js';
export { fullSchema, BUILT_IN_PLUGINS } from './print-schema.js';
export { CLI_VERSION } from './version.js';
export {
  AdminApi,
  DASHBOARD_HTML,
  DEFAULT_ADMIN_HOST,
  adminConfigIssue,
  backendStatus,
  isLoopbackHost,
  proxyMetrics,
  proxyStatus,
  startAdminServer,
  type AdminServer,
  type ProxyMetrics,
} from './admin/index.js';
