export { DEFAULT_ADMIN_HOST, adminConfigIssue, isLoopbackHost } from './config-rules.js';
export { AdminApi, backendStatus, proxyStatus, startAdminServer, type AdminServer } from './server.js';
export { proxyMetrics, type ProxyMetrics } from './metrics.js';
export { DASHBOARD_HTML } from './dashboard.js';
