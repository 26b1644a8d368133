import type { Backend, BackendPool } from '@wslb/core';
import type { CheckResult } from './checker.js';
import type { Settings } from './options.js';

/** What the tracker needs of the pool (BackendPool satisfies it). */
export type TrackedPool = Pick<BackendPool, 'get' | 'setState' | 'size'>;

interface BackendHealth {
  /** The active checks' verdict (up until `fall` failures, down until `rise` successes). */
  activeUp: boolean;
  /** Consecutive successes and failures of active checks. */
  successes: number;
  failures: number;
  /** Times of recent failed dials (passive checks). */
  failedDials: number[];
  /** Taken out by passive checks until the timer fires. */
  passiveTimer: NodeJS.Timeout | undefined;
}

/**
 * Turns check results into pool state, counting consecutive results exactly like nginx's
 * upstream_check_module: a success resets the failure count and a failure the success count; an
 * up backend goes down after `fall` failures in a row, a down one up after `rise` successes.
 * Passive checks (nginx max_fails/fail_timeout): `maxFails` failed dials within `failTimeout`
 * take a backend out for `failTimeout`. A backend is up when both verdicts say so. State goes
 * through pool.setState (source 'health'), so an operator's drain is never cleared here.
 */
export class HealthTracker {
  #settings: Settings;
  readonly #pool: TrackedPool;
  readonly #health = new Map<string, BackendHealth>();

  constructor(pool: TrackedPool, settings: Settings) {
    this.#pool = pool;
    this.#settings = settings;
  }

  /** Starts tracking a backend in `defaultState` (when active checks run) and applies it. */
  track(backend: Backend): void {
    if (this.#health.has(backend.id)) return;
    const activeUp = this.#settings.active ? this.#settings.defaultState === 'up' : true;
    this.#health.set(backend.id, {
      activeUp,
      successes: 0,
      failures: 0,
      failedDials: [],
      passiveTimer: undefined,
    });
    if (!activeUp) this.#apply(backend, 'health-check: no successful check yet (defaultState down)');
  }

  forget(id: string): void {
    const health = this.#health.get(id);
    if (health) clearTimeout(health.passiveTimer);
    this.#health.delete(id);
  }

  /** The active verdict and counters of a backend, for status pages and tests. */
  inspect(
    id: string,
  ): { activeUp: boolean; successes: number; failures: number; passiveDown: boolean } | undefined {
    const h = this.#health.get(id);
    if (!h) return undefined;
    return {
      activeUp: h.activeUp,
      successes: h.successes,
      failures: h.failures,
      passiveDown: h.passiveTimer !== undefined,
    };
  }

  /** New options (reload): counters restart; without active checks the active verdict is up. */
  reconfigure(settings: Settings): void {
    this.#settings = settings;
    for (const [id, h] of this.#health) {
      h.successes = 0;
      h.failures = 0;
      if (!settings.active && !h.activeUp) {
        h.activeUp = true;
        const backend = this.#pool.get(id);
        if (backend) this.#apply(backend, 'health-check: active checks turned off by reload');
      }
      if (!settings.passive && h.passiveTimer) {
        clearTimeout(h.passiveTimer);
        h.passiveTimer = undefined;
        const backend = this.#pool.get(id);
        if (backend) this.#apply(backend, 'health-check: passive checks turned off by reload');
      }
    }
  }

  /** Applies one active check result. Returns true when the backend's state changed. */
  applyCheck(result: CheckResult): boolean {
    const active = this.#settings.active;
    const backend = this.#pool.get(result.backend);
    const h = this.#health.get(result.backend);
    if (!active || !backend || !h) return false;
    backend.lastCheck = result.at;
    backend.lastCheckOk = result.ok;
    if (result.ok) {
      h.successes++;
      h.failures = 0;
      if (h.activeUp || h.successes < active.rise) return false;
      h.activeUp = true;
      return this.#apply(
        backend,
        `health-check ${result.type}: ${h.successes} consecutive successful checks (${result.reason})`,
      );
    }
    h.failures++;
    h.successes = 0;
    if (!h.activeUp || h.failures < active.fall) return false;
    h.activeUp = false;
    return this.#apply(
      backend,
      `health-check ${result.type}: ${h.failures} consecutive failed checks (${result.reason})`,
    );
  }

  /** A dial to the backend failed. Returns true when passive checks took it out. */
  dialFailed(backend: Backend, message: string, now = Date.now()): boolean {
    const passive = this.#settings.passive;
    const h = this.#health.get(backend.id);
    if (!passive || !h || h.passiveTimer) return false;
    // nginx: a group's only server is never considered unavailable.
    if (this.#pool.size <= 1) return false;
    h.failedDials = h.failedDials.filter((t) => now - t < passive.failTimeout);
    h.failedDials.push(now);
    if (h.failedDials.length < passive.maxFails) return false;
    const failures = h.failedDials.length;
    h.failedDials = [];
    h.passiveTimer = setTimeout(() => {
      h.passiveTimer = undefined;
      const current = this.#pool.get(backend.id);
      if (current && this.#health.get(backend.id) === h) {
        this.#apply(current, `health-check passive: ${passive.failTimeout} ms out of rotation elapsed`);
      }
    }, passive.failTimeout);
    return this.#apply(
      backend,
      `health-check passive: ${failures} failed dial(s) within ${passive.failTimeout} ms (${message}); ` +
        `out for ${passive.failTimeout} ms`,
    );
  }

  /** A dial to the backend succeeded: its failed dials are forgotten (nginx resets `fails`). */
  dialSucceeded(backend: Backend): void {
    const h = this.#health.get(backend.id);
    if (h && h.failedDials.length > 0) h.failedDials = [];
  }

  /** Clears passive timers. */
  stop(): void {
    for (const h of this.#health.values()) {
      clearTimeout(h.passiveTimer);
      h.passiveTimer = undefined;
    }
    this.#health.clear();
  }

  #apply(backend: Backend, reason: string): boolean {
    const h = this.#health.get(backend.id);
    if (!h) return false;
    const up = h.activeUp && h.passiveTimer === undefined;
    return this.#pool.setState(backend, up ? 'up' : 'down', reason);
  }
}
