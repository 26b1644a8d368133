import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import { type AdminConfig, type Backend, type Proxy, WslbError } from '@wslb/core';
import { DASHBOARD_HTML } from './dashboard.js';
import { DEFAULT_ADMIN_HOST, adminConfigIssue, isLoopbackHost } from './config-rules.js';
import { proxyMetrics } from './metrics.js';

export interface AdminServer {
  readonly server: Server;
  /** The bound address (port 0 gets a free port). */
  readonly host: string;
  readonly port: number;
  /** `http://host:port` */
  readonly url: string;
  /** Stops accepting and closes every admin connection. */
  close(): Promise<void>;
}

/** The Host header's host name, without the port. */
function hostName(header: string | undefined): string | undefined {
  if (!header) return undefined;
  if (header.startsWith('[')) return header.slice(0, header.indexOf(']') + 1);
  return header.split(':')[0];
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function send(
  res: ServerResponse,
  status: number,
  body: string,
  type = 'application/json; charset=utf-8',
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(body);
}

function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers?: Record<string, string>,
): void {
  send(res, status, `${JSON.stringify(value)}\n`, undefined, headers);
}

function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  headers?: Record<string, string>,
): void {
  sendJson(res, status, { error: message }, headers);
}

/** The dashboard is a static page: inline script and style, data fetched from this origin only. */
const DASHBOARD_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; " +
    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/** One backend as `GET /status` shows it (SPEC section 6, plus a few fields operators want). */
export function backendStatus(b: Backend): Record<string, unknown> {
  return {
    id: b.id,
    url: b.url,
    state: b.state,
    weight: b.weight,
    active: b.active,
    total: b.total,
    failures: b.failures,
    lastCheck: b.lastCheck === 0 ? null : new Date(b.lastCheck).toISOString(),
    lastCheckOk: b.lastCheckOk ?? null,
    backup: b.backup,
    maxConnections: b.maxConnections,
    drained: b.adminDrained,
  };
}

/** The body of `GET /status`. */
export function proxyStatus(proxy: Proxy): Record<string, unknown> {
  return {
    backends: proxy.pool.list().map(backendStatus),
    connections: proxy.connections,
    uptime: Math.round(proxy.uptime * 1000) / 1000,
    draining: proxy.shuttingDown,
    version: proxy.version,
  };
}

const BACKEND_ACTION = /^\/backends\/([^/]+)\/(drain|enable)$/;

/**
 * The admin API of a proxy: `GET /status`, `GET /metrics`, `POST /backends/:id/drain|enable`,
 * `GET /healthz` and the dashboard at `GET /`.
 *
 * With a `token`, every route but /healthz needs `Authorization: Bearer <token>` (401 otherwise).
 * Without one (loopback only), requests must name a loopback Host and POSTs must be JSON, so a web
 * page in the operator's browser can neither read (DNS rebinding) nor post (CSRF) to it.
 */
export class AdminApi {
  readonly #proxy: Proxy;
  readonly #token: string | undefined;

  readonly #refresh: (() => Promise<unknown>) | undefined;

  /** `refresh`: brings the proxy's counters up to date before a status answer (a cluster's workers). */
  constructor(proxy: Proxy, token?: string, refresh?: () => Promise<unknown>) {
    this.#proxy = proxy;
    this.#token = token;
    this.#refresh = refresh;
    // Metrics taps are made now, so counts start with the admin listener, not at the first scrape.
    proxyMetrics(proxy);
  }

  /** The request listener (usable with any http server). */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.#route(req, res).catch((err: unknown) => {
      this.#proxy.log.error({ err: (err as Error).message, url: req.url }, 'admin request failed');
      if (!res.headersSent) sendError(res, 500, 'internal error');
      else res.destroy();
    });
  };

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const path = new URL(req.url ?? '/', 'http://admin').pathname;

    // For orchestrators: no secret, no data.
    if (path === '/healthz') {
      if (method !== 'GET') return sendError(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
      return this.#proxy.shuttingDown
        ? send(res, 503, 'draining\n', 'text/plain')
        : send(res, 200, 'ok\n', 'text/plain');
    }

    const denied = this.#deny(req, method);
    if (denied) {
      // The page itself asks for the token, then sends it with every request it makes.
      if (denied.status === 401 && path === '/' && method === 'GET') {
        return send(res, 401, DASHBOARD_HTML, 'text/html; charset=utf-8', {
          ...DASHBOARD_HEADERS,
          'www-authenticate': 'Bearer realm="wslb admin"',
        });
      }
      return sendError(res, denied.status, denied.message, denied.headers);
    }

    if (path === '/' || path === '/index.html') {
      if (method !== 'GET') return sendError(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
      return send(res, 200, DASHBOARD_HTML, 'text/html; charset=utf-8', DASHBOARD_HEADERS);
    }
    if (path === '/status') {
      if (method !== 'GET') return sendError(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
      await this.#refresh?.();
      return sendJson(res, 200, proxyStatus(this.#proxy));
    }
    if (path === '/metrics') {
      if (method !== 'GET') return sendError(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
      const metrics = proxyMetrics(this.#proxy);
      return send(res, 200, await metrics.text(), metrics.contentType);
    }
    const action = BACKEND_ACTION.exec(path);
    if (action) {
      if (method !== 'POST') return sendError(res, 405, 'method not allowed', { allow: 'POST' });
      req.resume();
      let id: string;
      try {
        id = decodeURIComponent(action[1]!);
      } catch {
        return sendError(res, 400, 'malformed backend id');
      }
      const backend = this.#proxy.pool.get(id);
      if (!backend) return sendError(res, 404, `no backend "${id}"`);
      const remote = req.socket.remoteAddress;
      if (action[2] === 'drain') this.#proxy.pool.drain(backend, `admin drain (API, from ${remote})`);
      else this.#proxy.pool.enable(backend, `admin enable (API, from ${remote})`);
      this.#proxy.log.info({ backend: id, action: action[2], remote, state: backend.state }, 'admin action');
      return sendJson(res, 200, backendStatus(backend));
    }
    return sendError(res, 404, 'not found');
  }

  /** Authentication, DNS-rebinding and CSRF rules; undefined when the request may go on. */
  #deny(
    req: IncomingMessage,
    method: string,
  ): { status: number; message: string; headers?: Record<string, string> } | undefined {
    if (this.#token !== undefined) {
      const auth = req.headers.authorization ?? '';
      const m = /^Bearer\s+(.+)$/i.exec(auth);
      if (!m || !sameSecret(m[1]!.trim(), this.#token)) {
        return {
          status: 401,
          message: 'a bearer token is required',
          headers: { 'www-authenticate': 'Bearer realm="wslb admin"' },
        };
      }
      return undefined;
    }
    const host = hostName(req.headers.host);
    if (!host || !isLoopbackHost(host)) {
      return { status: 403, message: 'the Host header must name a loopback address' };
    }
    const origin = req.headers.origin;
    if (origin && origin !== 'null') {
      let originHost: string | undefined;
      try {
        originHost = new URL(origin).host;
      } catch {
        originHost = undefined;
      }
      if (originHost !== req.headers.host)
        return { status: 403, message: 'cross-origin requests are refused' };
    }
    if (method === 'POST') {
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/json') {
        return { status: 415, message: 'POST requests need Content-Type: application/json' };
      }
    }
    return undefined;
  }
}

/**
 * Starts the admin listener of a proxy (127.0.0.1 by default). A non-loopback host without a
 * token is refused with WSLB_ERR_CONFIG_INVALID.
 */
export async function startAdminServer(
  proxy: Proxy,
  config: AdminConfig,
  refresh?: () => Promise<unknown>,
): Promise<AdminServer> {
  const issue = adminConfigIssue(config);
  if (issue) throw new WslbError('WSLB_ERR_CONFIG_INVALID', `/admin: ${issue}`);
  const api = new AdminApi(proxy, config.token, refresh);
  const server = createServer(api.handle);
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const host = config.host ?? DEFAULT_ADMIN_HOST;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(
        new WslbError('WSLB_ERR_LISTEN', `cannot listen on ${host}:${config.port} (admin): ${err.message}`, {
          cause: err,
        }),
      );
    };
    server.once('error', onError);
    server.listen(config.port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => proxy.log.error({ err: err.message }, 'admin listener error'));
  const address = server.address() as AddressInfo;
  proxy.log.info({ address: address.address, port: address.port }, 'admin listening');
  const urlHost = isIP(address.address) === 6 ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    server,
    host: address.address,
    port: address.port,
    url: `http://${urlHost}:${address.port}`,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      })),
  };
}
