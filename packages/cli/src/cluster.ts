import cluster, { type Worker } from 'node:cluster';
import { type BackendState, type ClusterStats, type Proxy, WslbError } from '@wslb/core';
import { WORKER_ENV } from './cluster-role.js';

/** Messages between the primary and its workers (IPC). */
export type ClusterMessage =
  | { wslb: 'ready'; port: number }
  | { wslb: 'reloaded' }
  | { wslb: 'state'; id: string; state: BackendState; reason: string; admin: boolean }
  | { wslb: 'failure'; id: string; code: string; message: string }
  | { wslb: 'success'; id: string }
  | { wslb: 'failing'; id: string }
  | { wslb: 'stats?'; seq: number }
  | { wslb: 'stats'; seq: number; stats: ClusterStats }
  | { wslb: 'metrics?'; seq: number }
  | { wslb: 'metrics'; seq: number; metrics: unknown[] };

function isClusterMessage(value: unknown): value is ClusterMessage {
  return (
    typeof value === 'object' && value !== null && typeof (value as { wslb?: unknown }).wslb === 'string'
  );
}

function stateMessage(proxy: Proxy, id: string, reason: string): ClusterMessage | undefined {
  const backend = proxy.pool.get(id);
  if (!backend) return undefined;
  return { wslb: 'state', id, state: backend.state, reason, admin: backend.adminDrained };
}

/** Counters of several workers added up per backend; `totalsOnly` leaves live counts out. */
function sumStats(list: readonly ClusterStats[], totalsOnly = false): ClusterStats {
  const sum: ClusterStats = { connections: { active: 0, total: 0 }, backends: [] };
  const byId = new Map<string, ClusterStats['backends'][number]>();
  for (const stats of list) {
    if (!totalsOnly) sum.connections.active += stats.connections.active;
    sum.connections.total += stats.connections.total;
    for (const b of stats.backends) {
      const entry = byId.get(b.id) ?? { id: b.id, active: 0, total: 0, failures: 0 };
      if (!totalsOnly) entry.active += b.active;
      entry.total += b.total;
      entry.failures += b.failures;
      byId.set(b.id, entry);
    }
  }
  sum.backends = [...byId.values()];
  return sum;
}

/**
 * The primary of `workers: N`: owns the control plane (a proxy that runs health checks and the
 * admin API but listens for no traffic), forks the workers, restarts a crashed one with backoff,
 * shares backend states with all of them, sums their counters and fans signals out.
 */
export class ClusterPrimary {
  readonly #control: Proxy;
  readonly #count: number;
  readonly #workers = new Set<Worker>();
  #stopping = false;
  #crashes = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #statsTimer: NodeJS.Timeout | undefined;
  #seq = 0;
  #exited: () => void = () => {};
  /** Each worker's last counters, so that an exited worker's totals are kept. */
  readonly #lastStats = new Map<Worker, ClusterStats>();
  /** Totals of workers that exited (their live connections went with them). */
  #retired: ClusterStats = { connections: { active: 0, total: 0 }, backends: [] };

  constructor(control: Proxy, count: number, args: readonly string[]) {
    this.#control = control;
    this.#count = count;
    cluster.setupPrimary({ exec: process.argv[1], args: [...args], silent: false });
    control.hooks.backendState.tap('wslb:cluster', (backend, _previous, reason) => {
      const message = stateMessage(control, backend.id, reason);
      if (message) this.#broadcast(message);
    });
  }

  get workers(): Worker[] {
    return [...this.#workers];
  }

  start(): void {
    for (let i = 0; i < this.#count; i++) this.#fork();
    this.#statsTimer = setInterval(() => void this.refreshStats(), 1000);
  }

  #fork(): void {
    const worker = cluster.fork({ [WORKER_ENV]: '1' });
    const startedAt = Date.now();
    this.#workers.add(worker);
    const log = this.#control.log;
    worker.on('message', (message: unknown) => this.#onMessage(worker, message));
    worker.on('exit', (code, signal) => {
      this.#workers.delete(worker);
      this.#retire(worker);
      if (this.#stopping) {
        if (this.#workers.size === 0) this.#exited();
        return;
      }
      // A worker that lived a while crashed for a new reason: start the backoff over.
      if (Date.now() - startedAt > 10_000) this.#crashes = 0;
      const delay = Math.min(10_000, 100 * 2 ** this.#crashes++);
      log.error({ worker: worker.process.pid, code, signal, restartInMs: delay }, 'worker exited');
      this.#restartTimer = setTimeout(() => {
        this.#restartTimer = undefined;
        if (!this.#stopping) this.#fork();
      }, delay);
    });
  }

  #onMessage(worker: Worker, message: unknown): void {
    if (!isClusterMessage(message)) return;
    const control = this.#control;
    switch (message.wslb) {
      case 'ready':
        control.log.info({ worker: worker.process.pid, port: message.port }, 'worker ready');
        // A new worker starts from the states the control plane knows.
        this.#sendStates(worker, 'initial state');
        break;
      case 'reloaded':
        // Backends a reload added start up in the worker; the control plane may already know
        // better (a defaultState down, a failed check) and said so before the worker knew them.
        this.#sendStates(worker, 'state after reload');
        break;
      case 'failure': {
        const backend = control.pool.get(message.id);
        if (!backend) break;
        try {
          control.pool.reportFailure(backend, new WslbError(message.code, message.message));
        } catch (err) {
          control.log.warn({ err: (err as Error).message }, 'backendFailure tap failed');
        }
        // Whichever worker reaches it next reports the success that resets the count.
        this.#broadcast({ wslb: 'failing', id: message.id });
        break;
      }
      case 'success': {
        const backend = control.pool.get(message.id);
        if (!backend) break;
        try {
          control.pool.reportSuccess(backend);
        } catch (err) {
          control.log.warn({ err: (err as Error).message }, 'backendSuccess tap failed');
        }
        break;
      }
      case 'stats':
        this.#pending.get(message.seq)?.(worker, message.stats);
        break;
      case 'metrics':
        this.#pending.get(message.seq)?.(worker, message.metrics);
        break;
      default:
        break;
    }
  }

  /** Tells a worker every backend state that differs from the `up` a worker starts with. */
  #sendStates(worker: Worker, reason: string): void {
    const control = this.#control;
    for (const backend of control.pool.list()) {
      if (backend.state !== 'up' || backend.adminDrained) {
        const state = stateMessage(control, backend.id, reason);
        if (state && worker.isConnected()) worker.send(state);
      }
    }
  }

  readonly #pending = new Map<number, (worker: Worker, reply: unknown) => void>();

  /** Asks every connected worker one question; resolves with the replies that came in time. */
  async #ask<T>(kind: 'stats?' | 'metrics?', timeoutMs: number): Promise<Map<Worker, T>> {
    const seq = ++this.#seq;
    const workers = this.workers.filter((w) => w.isConnected());
    const replies = new Map<Worker, T>();
    await new Promise<void>((resolve) => {
      if (workers.length === 0) return resolve();
      const timer = setTimeout(resolve, timeoutMs);
      this.#pending.set(seq, (worker, reply) => {
        replies.set(worker, reply as T);
        if (replies.size >= workers.length) {
          clearTimeout(timer);
          resolve();
        }
      });
      for (const w of workers) w.send({ wslb: kind, seq } satisfies ClusterMessage);
    });
    this.#pending.delete(seq);
    return replies;
  }

  /** Every worker's metrics (prom-client JSON), for the primary's /metrics. */
  async workerMetrics(timeoutMs = 1000): Promise<unknown[][]> {
    return [...(await this.#ask<unknown[]>('metrics?', timeoutMs)).values()];
  }

  /** Keeps the totals of an exited worker: counters of connections ever made never go back. */
  #retire(worker: Worker): void {
    const last = this.#lastStats.get(worker);
    this.#lastStats.delete(worker);
    // Its live connections went with it; what it counted stays.
    if (last) this.#retired = sumStats([this.#retired, last], true);
  }

  /** Asks every worker for its counters and hands the sums (with exited workers' totals) to the control plane. */
  async refreshStats(timeoutMs = 500): Promise<ClusterStats> {
    const answers = await this.#ask<ClusterStats>('stats?', timeoutMs);
    for (const [worker, stats] of answers) if (this.#workers.has(worker)) this.#lastStats.set(worker, stats);
    const sum = sumStats([this.#retired, ...answers.values()]);
    this.#control.applyClusterStats(sum);
    return sum;
  }

  #broadcast(message: ClusterMessage): void {
    for (const worker of this.#workers) if (worker.isConnected()) worker.send(message);
  }

  /** SIGHUP: every worker reloads the (already validated) file. */
  reloadWorkers(): void {
    for (const worker of this.#workers) worker.process.kill('SIGHUP');
  }

  /** SIGTERM: every worker drains and exits; resolves when all are gone. */
  stop(): Promise<void> {
    this.#stopping = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    if (this.#statsTimer) clearInterval(this.#statsTimer);
    const done = new Promise<void>((resolve) => {
      this.#exited = resolve;
      if (this.#workers.size === 0) resolve();
    });
    for (const worker of this.#workers) worker.process.kill('SIGTERM');
    return done;
  }

  /** A second signal: no more waiting. */
  kill(): void {
    for (const worker of this.#workers) worker.process.kill('SIGKILL');
  }
}

/**
 * The worker side: reports failed dials, recoveries and counters to the primary and takes backend states
 * from it (health checks run only in the primary, so every worker agrees).
 */
export function joinCluster(
  proxy: Proxy,
  port: number,
  metrics: () => Promise<unknown[]>,
): { reloaded(): void } {
  const send = (message: ClusterMessage): void => {
    if (process.connected) process.send!(message);
  };
  proxy.hooks.backendFailure.tap('wslb:cluster', (backend, err) => {
    send({ wslb: 'failure', id: backend.id, code: err.code, message: err.message });
  });
  proxy.hooks.backendSuccess.tap('wslb:cluster', (backend) => send({ wslb: 'success', id: backend.id }));
  process.on('message', (message: unknown) => {
    if (!isClusterMessage(message)) return;
    if (message.wslb === 'failing') {
      const backend = proxy.pool.get(message.id);
      if (backend) backend.failing = true;
    } else if (message.wslb === 'state') {
      const backend = proxy.pool.get(message.id);
      if (!backend) return;
      if (message.admin) {
        proxy.pool.drain(backend, message.reason);
      } else {
        if (backend.adminDrained) proxy.pool.enable(backend, message.reason);
        proxy.pool.setState(backend, message.state, message.reason);
      }
    } else if (message.wslb === 'stats?') {
      send({ wslb: 'stats', seq: message.seq, stats: proxy.localStats() });
    } else if (message.wslb === 'metrics?') {
      const seq = message.seq;
      metrics().then(
        (list) => send({ wslb: 'metrics', seq, metrics: list }),
        () => send({ wslb: 'metrics', seq, metrics: [] }),
      );
    }
  });
  send({ wslb: 'ready', port });
  return { reloaded: () => send({ wslb: 'reloaded' }) };
}
