import type { BackendConfig, BackendTlsConfig } from './config.js';

export type BackendState = 'up' | 'down' | 'draining';

const DEFAULT_PORTS: Record<string, number> = { 'ws:': 80, 'http:': 80, 'wss:': 443, 'https:': 443 };

/** A stable id for a backend without one: its host and port, so reloads keep the identity. */
export function defaultBackendId(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname.replace(/^\[|\]$/g, '')}:${u.port || DEFAULT_PORTS[u.protocol] || 0}`;
  } catch {
    return url;
  }
}

/**
 * One upstream server. The core owns its state and counters; plugins read them and ask the pool
 * to change state (see BackendPool.setState).
 */
export class Backend {
  readonly id: string;
  url: string;
  weight: number;
  maxConnections: number;
  backup: boolean;
  /** Host header to send instead of the client's. */
  hostHeader: string | undefined;
  tls: BackendTlsConfig | undefined;
  proxyProtocol: 'v1' | 'v2' | undefined;
  slowStart: number;
  /** Connection target parsed from `url`. */
  hostname: string;
  port: number;
  secure: boolean;
  /** Path prefix of the url (without a trailing slash), prepended to request paths. */
  basePath: string;

  state: BackendState = 'up';
  /** Live connections: dials in progress, handshakes, tunnels and HTTP requests in flight. */
  active = 0;
  /** Connections ever assigned. */
  total = 0;
  /** Failed dials or handshakes ever. */
  failures = 0;
  /** A failed attempt was reported and no successful one since (see the backendSuccess hook). */
  failing = false;
  /** Time of the last health check result (ms since epoch), 0 when never checked. */
  lastCheck = 0;
  /** Result of the last health check, when one ran. */
  lastCheckOk: boolean | undefined = undefined;
  /** When the backend last came up (ms since epoch), for slow start. */
  upSince = Date.now();
  /** Removed from the pool by a reload; kept only while live connections finish. */
  removed = false;
  /** Whether an operator drained it (health results never clear that). */
  adminDrained = false;
  /** The last state health checks reported, restored when an admin drain is lifted. */
  healthState: 'up' | 'down' = 'up';

  constructor(config: BackendConfig) {
    this.id = config.id ?? defaultBackendId(config.url);
    this.url = config.url;
    this.weight = 1;
    this.maxConnections = 0;
    this.backup = false;
    this.hostname = '';
    this.port = 0;
    this.secure = false;
    this.basePath = '';
    this.slowStart = 0;
    this.hostHeader = undefined;
    this.tls = undefined;
    this.proxyProtocol = undefined;
    this.configure(config);
  }

  /** Applies a (re)loaded config; the id never changes. */
  configure(config: BackendConfig): void {
    const u = new URL(config.url);
    this.url = config.url;
    this.hostname = u.hostname.replace(/^\[|\]$/g, '');
    this.secure = u.protocol === 'wss:' || u.protocol === 'https:';
    this.port = Number(u.port) || DEFAULT_PORTS[u.protocol] || 0;
    this.basePath = u.pathname === '/' ? '' : u.pathname.replace(/\/$/, '');
    this.weight = config.weight ?? 1;
    this.maxConnections = config.maxConnections ?? 0;
    this.backup = config.backup ?? false;
    this.hostHeader = config.host;
    this.tls = config.tls;
    this.proxyProtocol = config.proxyProtocol;
    this.slowStart = config.slowStart ?? 0;
  }

  /** Up, not draining, not removed and under its connection limit. */
  get available(): boolean {
    return (
      this.state === 'up' && !this.removed && (this.maxConnections === 0 || this.active < this.maxConnections)
    );
  }

  toJSON(): Record<string, unknown> {
    return {
      id: this.id,
      url: this.url,
      state: this.state,
      weight: this.weight,
      backup: this.backup,
      maxConnections: this.maxConnections,
      active: this.active,
      total: this.total,
      failures: this.failures,
      lastCheck: this.lastCheck === 0 ? null : new Date(this.lastCheck).toISOString(),
    };
  }
}
