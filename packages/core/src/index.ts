export {
  checkPlugins,
  createProxy,
  instantiatePlugin,
  pluginConfigIssues,
  Proxy,
  type BoundAddress,
  type CloseOptions,
  type ClusterStats,
  type CreateProxyOptions,
  type ProxyRole,
} from './proxy.js';
export { Backend, type BackendState, defaultBackendId } from './backend.js';
export {
  ROUND_ROBIN,
  SmoothWeightedRoundRobin,
  roundRobin,
  roundRobinSchema,
  type RoundRobinOptions,
  type Weighted,
} from './round-robin.js';
export { BackendPool } from './pool.js';
export {
  STAGE_BALANCE,
  STAGE_OVERRIDE,
  type CloseInfo,
  type CloseReason,
  type ConnectRejection,
  type HeaderMap,
  type HeaderValue,
  type PluginHooks,
  type ProxyHooks,
  type Tappable,
  type TapOnly,
  type UpstreamRequest,
  type UpstreamResponse,
} from './hooks.js';
export type { ConnectionContext, ConnectionKind, RequestInfo } from './context.js';
export {
  ERRORS,
  WslbError,
  createError,
  toWslbError,
  type ErrorCode,
  type ErrorDefinition,
} from './errors.js';
export type {
  Plugin,
  PluginConfigCheck,
  PluginConfigProblem,
  PluginFactory,
  PluginHost,
  PluginModule,
} from './plugin.js';
export { isPlugin } from './plugin.js';
export { createPluginHooks, type AnyHook, type PluginHookSet } from './plugin-hooks.js';
// The hook classes, so that a plugin publishing hooks uses the same tapable as the core.
export {
  AsyncParallelHook,
  AsyncSeriesBailHook,
  AsyncSeriesHook,
  AsyncSeriesWaterfallHook,
  SyncBailHook,
  SyncHook,
  SyncWaterfallHook,
} from 'tapable';
export { loadPluginModule, pluginSpecifier, resolvePlugin } from './plugin-loader.js';
export { encodeProxyHeader, readProxyHeader, type ProxiedAddress } from './proxy-protocol.js';
export { readResponseHead, type ParsedResponseHead } from './response-head.js';
export {
  DEFAULT_LIMITS,
  DEFAULT_RETRIES,
  DEFAULT_TIMEOUTS,
  listenList,
  type AdminConfig,
  type BackendConfig,
  type BackendTlsConfig,
  type LimitsConfig,
  type ListenConfig,
  type ListenTlsConfig,
  type LogConfig,
  type PluginEntry,
  type PluginSpec,
  type ProxyConfig,
  type TimeoutsConfig,
} from './config.js';
export { configSchema, backendSchema } from './config-schema.js';
export {
  buildConfigSchema,
  formatIssueList,
  validateConfig,
  validatePluginOptions,
  type ConfigIssue,
  type PluginSchemaEntry,
} from './validate.js';
export { createLogger, type Logger } from './logger.js';
export { CORE_VERSION } from './version.js';
