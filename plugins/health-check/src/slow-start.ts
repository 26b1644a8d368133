import type { Backend } from '@wslb/core';

/** The smallest share a ramping backend gets, so that it is tried at all from the start. */
const MIN_FRACTION = 0.01;

/**
 * nginx's `slow_start`: a backend that comes back up takes a share of new connections that grows
 * linearly to its full weight over `slowStart` ms. While any candidate ramps, picks are smooth
 * weighted round-robin over the effective weights (deterministic, interleaved); otherwise the
 * configured balancer decides alone. Not applied at start-up, only after a recovery.
 */
export class SlowStart {
  /** When each ramping backend came up. */
  readonly #since = new Map<string, number>();
  readonly #current = new Map<string, number>();
  #defaultMs: number;

  constructor(defaultMs: number) {
    this.#defaultMs = defaultMs;
  }

  set defaultMs(ms: number) {
    this.#defaultMs = ms;
  }

  durationOf(backend: Backend): number {
    return backend.slowStart > 0 ? backend.slowStart : this.#defaultMs;
  }

  /** A backend came back up (from down): it ramps from now on. */
  recovered(backend: Backend, now = Date.now()): void {
    if (this.durationOf(backend) > 0) this.#since.set(backend.id, now);
  }

  forget(id: string): void {
    this.#since.delete(id);
    this.#current.delete(id);
  }

  get ramping(): number {
    return this.#since.size;
  }

  /** The share of its weight a backend gets now (1 when not ramping). */
  fraction(backend: Backend, now = Date.now()): number {
    const since = this.#since.get(backend.id);
    if (since === undefined) return 1;
    const duration = this.durationOf(backend);
    const elapsed = now - since;
    if (duration <= 0 || elapsed >= duration) {
      this.#since.delete(backend.id);
      return 1;
    }
    return Math.max(MIN_FRACTION, elapsed / duration);
  }

  /** Picks among the candidates while one of them ramps; undefined lets the balancer choose. */
  pick(candidates: readonly Backend[], now = Date.now()): Backend | undefined {
    if (this.#since.size === 0 || candidates.length < 2) return undefined;
    let ramping = false;
    const weights = candidates.map((c) => {
      const f = this.fraction(c, now);
      if (f < 1) ramping = true;
      return c.weight * f;
    });
    if (!ramping) return undefined;
    let total = 0;
    let best = 0;
    let bestValue = -Infinity;
    candidates.forEach((c, i) => {
      const value = (this.#current.get(c.id) ?? 0) + weights[i]!;
      this.#current.set(c.id, value);
      total += weights[i]!;
      if (value > bestValue) {
        bestValue = value;
        best = i;
      }
    });
    const chosen = candidates[best]!;
    this.#current.set(chosen.id, bestValue - total);
    return chosen;
  }
}
