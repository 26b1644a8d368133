export {
  EchoBackend,
  startEchoBackend,
  startEchoBackends,
  type EchoBackendOptions,
  type SeenRequest,
} from './echo-backend.js';
export {
  closeAll,
  closed,
  openClient,
  openClients,
  readAnswer,
  roundTrip,
  upgradeRequest,
  waitFor,
  webSocketKey,
  type OpenedClient,
  type RawAnswer,
} from './clients.js';
export {
  PIN_HEADER,
  backendConfigs,
  startProxy,
  type TestClientOptions,
  type TestProxy,
  type TestProxyConfig,
} from './proxy.js';
export { startCluster, type Cluster, type ClusterOptions } from './cluster.js';
export { createCleanup, type Cleanup, type Closable } from './cleanup.js';
export {
  execWslb,
  runWslb,
  wslbBinPath,
  writeTempConfig,
  type LogLine,
  type RunningWslb,
  type RunWslbResult,
} from './binary.js';
export { assertNoLeakedHandles } from './leaks.js';
