import { Backend, type BackendState, defaultBackendId } from './backend.js';
import type { BackendConfig } from './config.js';
import type { WslbError } from './errors.js';
import type { ProxyHooks } from './hooks.js';

/**
 * The backends of a proxy. Owns their state and counters; every state change goes through
 * setState so that pool hooks, logs and the admin API see the same thing.
 */
export class BackendPool {
  readonly #hooks: ProxyHooks;
  readonly #backends = new Map<string, Backend>();
  /** Backends removed by a reload that still carry live connections. */
  readonly #retired = new Set<Backend>();

  constructor(hooks: ProxyHooks, configs: readonly BackendConfig[] = []) {
    this.#hooks = hooks;
    for (const config of configs) this.add(config);
  }

  get size(): number {
    return this.#backends.size;
  }

  /** Backends in config order. */
  list(): Backend[] {
    return [...this.#backends.values()];
  }

  get(id: string): Backend | undefined {
    return this.#backends.get(id);
  }

  has(backend: Backend): boolean {
    return this.#backends.get(backend.id) === backend;
  }

  add(config: BackendConfig): Backend {
    const backend = new Backend(config);
    if (this.#backends.has(backend.id)) throw new Error(`duplicate backend id "${backend.id}"`);
    this.#backends.set(backend.id, backend);
    this.#hooks.backendAdded.call(backend);
    return backend;
  }

  /** Takes a backend out of selection; its live connections are left alone. */
  remove(id: string): Backend | undefined {
    const backend = this.#backends.get(id);
    if (!backend) return undefined;
    this.#backends.delete(id);
    backend.removed = true;
    if (backend.active > 0) this.#retired.add(backend);
    this.#hooks.backendRemoved.call(backend);
    return backend;
  }

  /** Backends removed by a reload whose connections have not finished yet. */
  retired(): Backend[] {
    for (const b of this.#retired) if (b.active === 0) this.#retired.delete(b);
    return [...this.#retired];
  }

  /**
   * Applies a new backend list: adds new ids, removes missing ones, reconfigures the rest in place
   * so that counters (and least-connections state) survive. Order follows the new list.
   */
  update(configs: readonly BackendConfig[]): { added: Backend[]; removed: Backend[]; changed: Backend[] } {
    const wanted = new Map(configs.map((c) => [c.id ?? defaultBackendId(c.url), c]));
    const removed: Backend[] = [];
    for (const id of [...this.#backends.keys()]) {
      if (!wanted.has(id)) removed.push(this.remove(id)!);
    }
    const added: Backend[] = [];
    const changed: Backend[] = [];
    const ordered = new Map<string, Backend>();
    for (const [id, config] of wanted) {
      const existing = this.#backends.get(id);
      if (existing) {
        existing.configure(config);
        changed.push(existing);
        ordered.set(id, existing);
      } else {
        const backend = new Backend(config);
        ordered.set(id, backend);
        added.push(backend);
      }
    }
    this.#backends.clear();
    for (const [id, b] of ordered) this.#backends.set(id, b);
    for (const b of added) this.#hooks.backendAdded.call(b);
    return { added, removed, changed };
  }

  /**
   * The backends a balancer may choose from: available primaries, else available backups.
   * `exclude` holds backends already tried for this connection.
   */
  candidates(exclude?: ReadonlySet<Backend>): Backend[] {
    const primaries: Backend[] = [];
    let backups: Backend[] | undefined;
    for (const b of this.#backends.values()) {
      if (!b.available || exclude?.has(b)) continue;
      if (b.backup) (backups ??= []).push(b);
      else primaries.push(b);
    }
    return primaries.length > 0 ? primaries : (backups ?? primaries);
  }

  /**
   * Changes a backend's health state. A drain set by an operator is not undone by health results
   * (`source: 'health'`); only `enable` (source 'admin') clears it.
   */
  setState(
    backend: Backend,
    state: BackendState,
    reason: string,
    source: 'health' | 'admin' = 'health',
  ): boolean {
    if (source === 'admin') backend.adminDrained = state === 'draining';
    else if (backend.adminDrained) {
      // Remember the health result for when the drain is lifted, but keep draining.
      backend.healthState = state === 'draining' ? backend.healthState : state;
      return false;
    }
    if (source === 'health' && state !== 'draining') backend.healthState = state;
    const previous = backend.state;
    if (previous === state) return false;
    backend.state = state;
    if (state === 'up') backend.upSince = Date.now();
    this.#hooks.backendState.call(backend, previous, reason);
    return true;
  }

  /**
   * Records a failed dial or handshake of a backend and tells `backendFailure` taps (passive
   * health checks). A throwing tap is the caller's to contain.
   */
  reportFailure(backend: Backend, error: WslbError): void {
    backend.failures++;
    backend.failing = true;
    this.#hooks.backendFailure.call(backend, error);
  }

  /**
   * Records a successful attempt (the backend answered). Only the first one after a failure tells
   * `backendSuccess` taps, so a healthy backend costs nothing per connection.
   */
  reportSuccess(backend: Backend): void {
    if (!backend.failing) return;
    backend.failing = false;
    this.#hooks.backendSuccess.call(backend);
  }

  drain(backend: Backend, reason = 'admin drain'): boolean {
    return this.setState(backend, 'draining', reason, 'admin');
  }

  enable(backend: Backend, reason = 'admin enable'): boolean {
    return this.setState(backend, backend.healthState, reason, 'admin');
  }
}
