import type { Plugin } from './plugin.js';

export interface BackendTlsConfig {
  ca?: string | Buffer | Array<string | Buffer>;
  rejectUnauthorized?: boolean;
  servername?: string;
}

export interface BackendConfig {
  id?: string;
  url: string;
  weight?: number;
  maxConnections?: number;
  backup?: boolean;
  host?: string;
  tls?: BackendTlsConfig;
  proxyProtocol?: 'v1' | 'v2';
  slowStart?: number;
}

export interface ListenTlsConfig {
  cert: string;
  key: string;
  ca?: string;
  passphrase?: string;
}

export interface ListenConfig {
  host?: string;
  port: number;
  tls?: ListenTlsConfig;
  proxyProtocol?: boolean;
}

export interface PluginEntry {
  use: string;
  options?: Record<string, unknown>;
}

export type PluginSpec = string | PluginEntry | Plugin;

export interface TimeoutsConfig {
  connect?: number;
  request?: number;
  handshake?: number;
  response?: number;
  idle?: number;
  halfClose?: number;
  drain?: number;
  removedBackend?: number;
  /** How long a tap may take before its connection fails with WSLB_ERR_TAP_TIMEOUT (0 = no limit). */
  hook?: number;
  /** How long a plugin's apply() may take at startup or reload (0 = no limit). */
  plugin?: number;
}

export interface LimitsConfig {
  connections?: number;
  perClient?: number;
  headerSize?: number;
}

export interface AdminConfig {
  host?: string;
  port: number;
  token?: string;
}

export interface LogConfig {
  level?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  access?: boolean | number;
}

/** The configuration object: the same shape as the JSON file the binary reads. */
export interface ProxyConfig {
  listen?: ListenConfig | ListenConfig[];
  mode?: 'http' | 'tcp';
  backends: BackendConfig[];
  plugins?: PluginSpec[];
  timeouts?: TimeoutsConfig;
  retries?: number;
  limits?: LimitsConfig;
  trustedProxies?: string[];
  admin?: AdminConfig;
  log?: LogConfig;
  workers?: number | 'auto';
  /** Folder that plugin names are resolved from (the config file's folder for the binary). */
  pluginBase?: string;
}

export interface ResolvedTimeouts {
  connect: number;
  request: number;
  handshake: number;
  response: number;
  idle: number;
  halfClose: number;
  drain: number;
  removedBackend: number;
  hook: number;
  plugin: number;
}

export interface ResolvedLimits {
  connections: number;
  perClient: number;
  headerSize: number;
}

export const DEFAULT_TIMEOUTS: Readonly<ResolvedTimeouts> = Object.freeze({
  connect: 5000,
  request: 10000,
  handshake: 10000,
  response: 60000,
  idle: 0,
  halfClose: 30000,
  drain: 25000,
  removedBackend: 0,
  hook: 5000,
  plugin: 10000,
});

export const DEFAULT_LIMITS: Readonly<ResolvedLimits> = Object.freeze({
  connections: 0,
  perClient: 0,
  headerSize: 16384,
});

export const DEFAULT_RETRIES = 2;

export function resolveTimeouts(t: TimeoutsConfig | undefined): ResolvedTimeouts {
  return { ...DEFAULT_TIMEOUTS, ...t };
}

export function resolveLimits(l: LimitsConfig | undefined): ResolvedLimits {
  return { ...DEFAULT_LIMITS, ...l };
}

export function listenList(listen: ProxyConfig['listen']): ListenConfig[] {
  if (listen === undefined) return [{ host: '0.0.0.0', port: 8080 }];
  return Array.isArray(listen) ? listen : [listen];
}
