export {
  AdminApi,
  DEFAULT_ADMIN_HOST,
  adminConfigIssue,
  backendStatus,
  isLoopbackHost,
  proxyStatus,
  startAdminServer,
  type AdminServer,
} from './server.js';
export { proxyMetrics, type ProxyMetrics } from './metrics.js';
export { DASHBOARD_HTML } from './dashboard.js';
