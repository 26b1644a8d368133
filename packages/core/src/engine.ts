import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Backend } from './backend.js';
import type { ResolvedLimits, ResolvedTimeouts } from './config.js';
import type { Connection } from './context.js';
import { dialBackend, tuneSocket } from './dial.js';
import { WslbError, toWslbError } from './errors.js';
import type { CloseInfo, CloseReason, ConnectRejection, ProxyHooks } from './hooks.js';
import type { BackendPool } from './pool.js';
import { TrustedProxies } from './forwarded.js';
import { proxyHeaderFor } from './proxy-protocol.js';
import { Tunnel, type TunnelOwner } from './tunnel.js';

export interface EngineSettings {
  timeouts: ResolvedTimeouts;
  limits: ResolvedLimits;
  retries: number;
  trusted: TrustedProxies;
  /** Share of closed connections that get an access line (0..1). */
  accessLog: number;
}

/** A backend chosen and connected for one attempt. */
export interface DialedBackend {
  backend: Backend;
  socket: Socket;
}

/**
 * The per-proxy runtime shared by every connection: settings, counters, and the steps all three
 * paths (ws, http, tcp) take: admit, ask connect taps, select, dial with retries, finish.
 */
export class Engine implements TunnelOwner {
  readonly hooks: ProxyHooks;
  readonly pool: BackendPool;
  readonly log: Logger;
  settings: EngineSettings;
  shuttingDown = false;
  /** Live connections (tunnels, handshakes, HTTP requests in flight). */
  active = 0;
  total = 0;
  readonly perClient = new Map<string, number>();
  readonly tunnels = new Set<Tunnel>();
  readonly #agents = new WeakMap<Backend, HttpAgent>();
  #idleWaiters: Array<() => void> = [];

  constructor(hooks: ProxyHooks, pool: BackendPool, log: Logger, settings: EngineSettings) {
    this.hooks = hooks;
    this.pool = pool;
    this.log = log;
    this.settings = settings;
  }

  /** Limits and shutdown: an error to answer with, or undefined when the connection may go on. */
  admit(ctx: Connection): WslbError | undefined {
    if (this.shuttingDown) return new WslbError('WSLB_ERR_SHUTTING_DOWN');
    const { connections, perClient } = this.settings.limits;
    if (connections > 0 && this.active >= connections) {
      return new WslbError('WSLB_ERR_TOO_MANY_CONNECTIONS', undefined, { headers: { 'retry-after': '1' } });
    }
    const fromClient = this.perClient.get(ctx.clientAddress) ?? 0;
    if (perClient > 0 && fromClient >= perClient) return new WslbError('WSLB_ERR_TOO_MANY_PER_CLIENT');
    this.active++;
    this.total++;
    this.perClient.set(ctx.clientAddress, fromClient + 1);
    return undefined;
  }

  /** Runs an async hook call, failing it with a coded error when it throws or hangs. */
  async runHook<T>(name: string, call: () => Promise<T>): Promise<T> {
    const limit = this.settings.timeouts.hook;
    let timer: NodeJS.Timeout | undefined;
    let timeout: WslbError | undefined;
    try {
      if (limit <= 0) return await call();
      return await Promise.race([
        call(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            timeout = new WslbError('WSLB_ERR_TAP_TIMEOUT', `${name} hook did not finish within ${limit} ms`);
            reject(timeout);
          }, limit);
        }),
      ]);
    } catch (err) {
      // A WslbError thrown by a tap carries words its author meant for the client.
      if (err instanceof WslbError && err !== timeout) err.expose = true;
      throw toWslbError(err, name);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /** Asks connect taps; a rejection becomes a WslbError with the status the tap chose. */
  async runConnect(ctx: Connection): Promise<WslbError | undefined> {
    if (!this.hooks.connect.isUsed()) return undefined;
    const rejection = (await this.runHook('connect', () => this.hooks.connect.promise(ctx))) as
      ConnectRejection | undefined;
    if (!rejection) return undefined;
    return new WslbError('WSLB_ERR_REJECTED', rejection.reason ?? 'Connection rejected', {
      status: rejection.status ?? 403,
      headers: rejection.headers,
    });
  }

  /** Runs select taps over the candidates; undefined when none chose. */
  async select(ctx: Connection, candidates: readonly Backend[]): Promise<Backend | undefined> {
    const chosen = (await this.runHook('select', () => this.hooks.select.promise(ctx, candidates))) as
      Backend | undefined;
    if (chosen === undefined || chosen === null) return undefined;
    // A candidate that filled up (or went down) while an async tap decided is stale, not invalid.
    if (!this.pool.has(chosen) || (!chosen.available && !candidates.includes(chosen))) {
      throw new WslbError(
        'WSLB_ERR_INVALID_BACKEND',
        `select returned ${typeof chosen === 'object' ? `backend "${String((chosen as Backend).id)}"` : String(chosen)}, which is not an available backend`,
      );
    }
    return chosen;
  }

  /**
   * Selects among the current candidates. Between the candidate list and the reservation a select
   * tap may await; when the backend it returns is no longer available by then (another connection
   * took its last slot), selects again among the backends still available.
   */
  async #choose(ctx: Connection, tried: ReadonlySet<Backend>): Promise<Backend | undefined> {
    for (let stale = 0; stale <= this.pool.size; stale++) {
      const candidates = this.pool.candidates(tried);
      if (candidates.length === 0) return undefined;
      const backend = await this.select(ctx, candidates);
      if (!backend || backend.available) return backend;
    }
    return undefined;
  }

  /**
   * Selects a backend and reserves it, trying another one on each failure up to `retries`.
   * `attempt` does the work (a dial, a request); it returns a value, or throws a WslbError that
   * tells whether another backend may be tried. On success `ctx.backend` is set and counted.
   */
  async withBackend<T>(
    ctx: Connection,
    attempt: (backend: Backend) => Promise<T>,
    isGone: () => boolean,
  ): Promise<T> {
    const tried = new Set<Backend>();
    let lastError: WslbError | undefined;
    for (let i = 0; i <= this.settings.retries; i++) {
      const backend = await this.#choose(ctx, tried);
      if (!backend || isGone()) break;
      tried.add(backend);
      ctx.backend = backend;
      backend.active++;
      try {
        const result = await attempt(backend);
        backend.total++;
        if (backend.failing) this.callSync('backendSuccess', () => this.pool.reportSuccess(backend));
        return result;
      } catch (err) {
        backend.active--;
        ctx.backend = undefined;
        const error = toWslbError(err);
        lastError = error;
        if (error.code === 'WSLB_ERR_BACKEND_CONNECT' || error.retryable) {
          this.callSync('backendFailure', () => this.pool.reportFailure(backend, error));
          ctx.log.debug({ backend: backend.id, err: error.message }, 'backend attempt failed');
          if (isGone()) break;
          continue;
        }
        throw error;
      }
    }
    if (lastError) throw lastError;
    throw new WslbError('WSLB_ERR_NO_BACKEND', undefined, { headers: { 'retry-after': '5' } });
  }

  /**
   * Dials a backend for a raw connection (ws or tcp); a backend that expects the PROXY protocol
   * gets its header first, naming the client.
   */
  async dial(backend: Backend, ctx: Connection, client: Socket): Promise<Socket> {
    const socket = await dialBackend(backend, this.settings.timeouts.connect);
    if (backend.proxyProtocol) {
      socket.write(proxyHeaderFor(backend.proxyProtocol, client, ctx.clientAddress, ctx.remotePort));
    }
    return socket;
  }

  /** The keep-alive agent of a backend for plain HTTP. */
  agentFor(backend: Backend): HttpAgent {
    let agent = this.#agents.get(backend);
    if (!agent) {
      const options = {
        keepAlive: true,
        keepAliveMsecs: 1000,
        maxFreeSockets: 64,
        scheduling: 'lifo' as const,
      };
      agent = backend.secure ? new HttpsAgent(options) : new HttpAgent(options);
      this.#agents.set(backend, agent);
    }
    return agent;
  }

  destroyAgent(backend: Backend): void {
    this.#agents.get(backend)?.destroy();
    this.#agents.delete(backend);
  }

  /** Calls a sync hook; a throwing tap is logged and reported, never thrown. */
  callSync(name: string, call: () => void, ctx?: Connection): WslbError | undefined {
    try {
      call();
      return undefined;
    } catch (err) {
      const error = toWslbError(err, name);
      this.reportError(ctx, error);
      return error;
    }
  }

  /** Logs a fault with its code and tells error taps (whose own faults are only logged). */
  reportError(ctx: Connection | undefined, error: WslbError): void {
    // The root logger with the connection id: no child logger made for a refused request.
    const log = this.log;
    const level = error.status >= 500 && error.code !== 'WSLB_ERR_SHUTTING_DOWN' ? 'warn' : 'debug';
    log[level]({ conn: ctx?.id, code: error.code, err: error.message }, 'connection failed');
    if (!this.hooks.error.isUsed()) return;
    try {
      this.hooks.error.call(ctx, error);
    } catch (err) {
      log.error({ code: 'WSLB_ERR_TAP_FAILED', err: (err as Error).message }, 'error hook failed');
    }
  }

  /** Ends a connection's accounting: counters, close hook, access line. Call once per context. */
  finish(
    ctx: Connection,
    reason: CloseReason,
    status: number,
    error: WslbError | undefined,
    bytesIn: number,
    bytesOut: number,
  ): void {
    const backend = ctx.backend;
    if (backend) {
      backend.active--;
      if (backend.removed && backend.active === 0) this.pool.retired();
    }
    this.active--;
    const fromClient = (this.perClient.get(ctx.clientAddress) ?? 1) - 1;
    if (fromClient <= 0) this.perClient.delete(ctx.clientAddress);
    else this.perClient.set(ctx.clientAddress, fromClient);
    this.#report(ctx, reason, status, error, bytesIn, bytesOut);
    if (this.active === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * A connection turned away before it was admitted (bad upgrade headers, limits): the close
   * hook and the access line see it, the live counters never did.
   */
  refuse(ctx: Connection, error: WslbError, bytesIn: number, bytesOut = 0): void {
    this.#report(ctx, 'rejected', error.status, error, bytesIn, bytesOut);
  }

  #report(
    ctx: Connection,
    reason: CloseReason,
    status: number,
    error: WslbError | undefined,
    bytesIn: number,
    bytesOut: number,
  ): void {
    const backend = ctx.backend;
    const info: CloseInfo = {
      reason,
      status,
      backend,
      durationMs: Date.now() - ctx.startTime,
      bytesIn,
      bytesOut,
      error,
    };
    if (this.hooks.close.isUsed()) this.callSync('close', () => this.hooks.close.call(ctx, info), ctx);
    const sample = this.settings.accessLog;
    if (sample > 0 && (sample >= 1 || Math.random() < sample)) {
      // Ordinary client resets are noise at scale: debug level, counted in metrics instead.
      const level = reason === 'client-error' ? 'debug' : 'info';
      this.log[level]({
        conn: ctx.id,
        client: ctx.clientAddress,
        backend: backend?.id,
        kind: ctx.kind,
        method: ctx.request?.method,
        url: ctx.request?.url,
        status,
        durationMs: info.durationMs,
        bytesIn,
        bytesOut,
        reason,
        code: error?.code,
        msg: 'access',
      });
    }
  }

  /** Resolves when no connection is live. */
  whenIdle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Pairs a client with its connected backend in a tunnel (not flowing until `start()`); the
   * caller writes what must go first (the 101), then runs the open hook and starts it.
   */
  openTunnel(client: Socket, backend: Socket, ctx: Connection): Tunnel {
    tuneSocket(client);
    const { idle, halfClose } = this.settings.timeouts;
    const tunnel = new Tunnel(client, backend, ctx, this, idle, halfClose);
    this.tunnels.add(tunnel);
    return tunnel;
  }

  /** Runs open taps; the fault when one threw (the caller fails the tunnel with it). */
  openError(ctx: Connection): WslbError | undefined {
    return this.hooks.open.isUsed() ? this.callSync('open', () => this.hooks.open.call(ctx), ctx) : undefined;
  }

  /** Ends every tunnel of one backend (a removed backend past its grace period). */
  closeTunnelsOf(backend: Backend, reason: CloseReason): void {
    for (const tunnel of [...this.tunnels]) if (tunnel.ctx.backend === backend) tunnel.close(reason);
  }

  tunnelClosed(tunnel: Tunnel, reason: CloseReason, error: Error | undefined): void {
    this.tunnels.delete(tunnel);
    // Client resets are ordinary; a backend fault is worth a code in the close info.
    const wrapped =
      error instanceof WslbError
        ? error
        : error && reason === 'backend-error'
          ? new WslbError('WSLB_ERR_BACKEND_CLOSED', `backend socket failed: ${error.message}`, {
              cause: error,
            })
          : undefined;
    if (reason === 'idle-timeout') tunnel.ctx.log.debug('tunnel idle timeout');
    // A tcp session has no HTTP status: 200 for one that was connected, as nginx's stream logs it.
    const status = tunnel.ctx.kind === 'tcp' ? 200 : 101;
    this.finish(tunnel.ctx, reason, status, wrapped, tunnel.client.bytesRead, tunnel.client.bytesWritten);
  }
}
