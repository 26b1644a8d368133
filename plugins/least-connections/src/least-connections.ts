/**
 * Least connections (HAProxy `leastconn`): the candidate with the fewest live connections
 * relative to its weight wins. The counts are the core's `active` counters, which include every
 * upgraded tunnel for its whole life, not only handshakes in flight.
 */
export interface Loaded {
  readonly id: string;
  readonly weight: number;
  /** Live connections, as counted by the core. */
  readonly active: number;
}

export interface LeastConnectionsOptions {
  /**
   * Compare only this many candidates drawn at random (power of two choices) instead of scanning
   * them all. Unset or not below the candidate count: every candidate is compared.
   */
  choices?: number;
  /** Source of randomness in [0, 1) for `choices` (tests pass a seeded one). */
  random?: () => number;
}

function weightOf(b: Loaded): number {
  return b.weight > 0 ? b.weight : 1;
}

/** Negative when `a` carries less load per unit of weight than `b` (exact, no division). */
function compareLoad(a: Loaded, b: Loaded): number {
  return a.active * weightOf(b) - b.active * weightOf(a);
}

export class LeastConnections {
  readonly #choices: number;
  readonly #random: () => number;
  /** When each backend was last picked; among equally loaded backends the least recent wins. */
  readonly #lastPicked = new Map<string, number>();
  #sequence = 0;
  /** Indexes drawn by the current sampled pick; reused so a pick allocates nothing. */
  readonly #drawn: number[] = [];

  constructor(options: LeastConnectionsOptions = {}) {
    this.#choices = options.choices ?? 0;
    this.#random = options.random ?? Math.random;
  }

  pick<T extends Loaded>(candidates: readonly T[]): T | undefined {
    const n = candidates.length;
    if (n === 0) return undefined;
    const best =
      n === 1
        ? candidates[0]!
        : this.#choices >= 1 && this.#choices < n
          ? this.#bestOfSample(candidates)
          : this.#bestOfAll(candidates);
    this.#lastPicked.set(best.id, ++this.#sequence);
    return best;
  }

  /** Forgets a backend (removed from the pool). */
  forget(id: string): void {
    this.#lastPicked.delete(id);
  }

  #better(a: Loaded, b: Loaded): boolean {
    const load = compareLoad(a, b);
    if (load !== 0) return load < 0;
    // A tie: rotate by picking the one that waited longest (never picked counts as oldest).
    return (this.#lastPicked.get(a.id) ?? 0) < (this.#lastPicked.get(b.id) ?? 0);
  }

  #bestOfAll<T extends Loaded>(candidates: readonly T[]): T {
    let best = candidates[0]!;
    for (let i = 1; i < candidates.length; i++) {
      const c = candidates[i]!;
      if (this.#better(c, best)) best = c;
    }
    return best;
  }

  /**
   * Draws `choices` distinct candidates (Floyd's sampling: exactly `choices` random draws, O(k²)
   * with k tiny, nothing allocated) and keeps the least loaded of them.
   */
  #bestOfSample<T extends Loaded>(candidates: readonly T[]): T {
    const n = candidates.length;
    const drawn = this.#drawn;
    drawn.length = 0;
    let best: T | undefined;
    for (let j = n - this.#choices; j < n; j++) {
      const t = Math.min(j, Math.floor(this.#random() * (j + 1)));
      const index = drawn.includes(t) ? j : t;
      drawn.push(index);
      const c = candidates[index]!;
      if (!best || this.#better(c, best)) best = c;
    }
    return best!;
  }
}
