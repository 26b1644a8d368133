import { performance } from 'node:perf_hooks';

/**
 * Latency estimates per backend and the choice they lead to. Pure: no sockets, no timers; the
 * clock is injected, so the policy is tested with simulated time.
 *
 * The estimate is a peak EWMA (Finagle's and Linkerd's "PeakEwma"): a sample above the current
 * estimate replaces it at once (a backend that turns slow is avoided from the next connection);
 * otherwise samples and time pull it down, with a time constant of `decay` ms. Without samples it
 * decays towards 0, so a backend that was avoided for a while is tried again instead of being
 * starved forever on one bad reading.
 */
export interface Candidate {
  readonly id: string;
  readonly weight: number;
  /** Live connections (the core's counter). */
  readonly active: number;
}

export interface LatencyTableOptions {
  /** Time constant of the estimate in ms. */
  decay: number;
  /** Clock in ms; `performance.now()` by default. */
  now?: () => number;
}

interface Estimate {
  /** Latency in ms at `stamp`; undefined until the first sample. */
  cost: number | undefined;
  stamp: number;
  /** Connections sent here while it had no estimate, whose sample has not come back. */
  probing: number;
}

/** Score of an unmeasured backend that already has a probe in flight: last resort. */
const PROBING_PENALTY = 1e12;

export class LatencyTable {
  decay: number;
  readonly #now: () => number;
  readonly #estimates = new Map<string, Estimate>();
  /** Rotates the start of the scan so that ties do not all go to the first candidate. */
  #turn = 0;

  constructor({ decay, now = () => performance.now() }: LatencyTableOptions) {
    this.decay = decay;
    this.#now = now;
  }

  #entry(id: string): Estimate {
    let entry = this.#estimates.get(id);
    if (!entry) {
      entry = { cost: undefined, stamp: this.#now(), probing: 0 };
      this.#estimates.set(id, entry);
    }
    return entry;
  }

  /** Records a latency sample (ms); returns the new estimate. */
  observe(id: string, ms: number): number {
    const entry = this.#entry(id);
    const now = this.#now();
    const sample = Math.max(0, ms);
    if (entry.cost === undefined || sample > entry.cost) {
      entry.cost = sample;
    } else {
      const w = Math.exp(-Math.max(0, now - entry.stamp) / this.decay);
      entry.cost = entry.cost * w + sample * (1 - w);
    }
    entry.stamp = now;
    return entry.cost;
  }

  /** The current estimate in ms (decayed to now), or undefined when the backend is unmeasured. */
  estimate(id: string): number | undefined {
    const entry = this.#estimates.get(id);
    if (entry?.cost === undefined) return undefined;
    return entry.cost * Math.exp(-Math.max(0, this.#now() - entry.stamp) / this.decay);
  }

  /** Whether a backend has an estimate. */
  measured(id: string): boolean {
    return this.#estimates.get(id)?.cost !== undefined;
  }

  /** A connection was sent to an unmeasured backend; until `settle`, others avoid it. */
  probe(id: string): void {
    this.#entry(id).probing++;
  }

  settle(id: string): void {
    const entry = this.#estimates.get(id);
    if (entry && entry.probing > 0) entry.probing--;
  }

  /** Drops what is known of a backend (removed, or back up after being down). */
  forget(id: string): void {
    this.#estimates.delete(id);
  }

  /**
   * Lower is better: (latency + 1 ms) x (live connections + 1) / weight, so latency and load both
   * count (nginx's `least_time` idea). An unmeasured backend scores 0 (it is tried at once, to be
   * measured) unless a probe is already in flight there.
   */
  score(candidate: Candidate): number {
    const estimate = this.estimate(candidate.id);
    const weight = candidate.weight > 0 ? candidate.weight : 1;
    if (estimate === undefined) {
      const probing = this.#estimates.get(candidate.id)?.probing ?? 0;
      return probing === 0 ? 0 : PROBING_PENALTY + probing + candidate.active / weight;
    }
    return ((estimate + 1) * (candidate.active + 1)) / weight;
  }

  /** The candidate with the lowest score; ties rotate. Undefined for an empty list. */
  pick<T extends Candidate>(candidates: readonly T[]): T | undefined {
    const n = candidates.length;
    if (n === 0) return undefined;
    const start = this.#turn++ % n;
    if (this.#turn >= Number.MAX_SAFE_INTEGER) this.#turn = 0;
    let best: T | undefined;
    let bestScore = Infinity;
    for (let i = 0; i < n; i++) {
      const candidate = candidates[(start + i) % n]!;
      const score = this.score(candidate);
      if (score < bestScore) {
        best = candidate;
        bestScore = score;
      }
    }
    return best;
  }
}
