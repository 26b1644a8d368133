import { xxHash32 } from 'js-xxhash';

/**
 * Weighted rendezvous hashing (highest random weight, logarithmic method): every candidate gets
 * the score `weight / -ln(u)`, where `u` in (0, 1) is a hash of the key seeded by the candidate's
 * id, and the highest score wins. A candidate wins a key with probability weight / total weight;
 * removing one moves only the keys it had, and they come back when it returns, because no other
 * candidate's score depends on it. The hash (xxHash32) is fixed, so every process and every
 * restart maps a key to the same backend.
 */
export interface Weighted {
  readonly id: string;
  readonly weight: number;
}

/** Seeds the per-backend seeds, so that ids do not hash like keys. Never change it: keys would move. */
const ID_SEED = 0x77736c62;
const TWO_POW_32 = 2 ** 32;
const encoder = new TextEncoder();

export class WeightedRendezvous {
  /** Hash seed per backend id, computed once. */
  readonly #seeds = new Map<string, number>();

  /** The candidate that owns `key`; undefined when there is none. */
  pick<T extends Weighted>(key: string | Uint8Array, candidates: readonly T[]): T | undefined {
    if (candidates.length <= 1) return candidates[0];
    const bytes = typeof key === 'string' ? encoder.encode(key) : key;
    let best: T | undefined;
    let bestScore = -1;
    for (const c of candidates) {
      const score = this.score(bytes, c);
      if (score > bestScore || (score === bestScore && best !== undefined && c.id < best.id)) {
        best = c;
        bestScore = score;
      }
    }
    return best;
  }

  /** The score of one candidate for a key (higher wins). */
  score(key: Uint8Array, candidate: Weighted): number {
    const hash = xxHash32(key, this.#seedOf(candidate.id)) >>> 0;
    // (hash + 0.5) / 2^32 is strictly inside (0, 1), so the logarithm is finite and negative.
    const u = (hash + 0.5) / TWO_POW_32;
    const weight = candidate.weight > 0 ? candidate.weight : 1;
    return weight / -Math.log(u);
  }

  /** Forgets a backend's cached seed (removed from the pool). */
  forget(id: string): void {
    this.#seeds.delete(id);
  }

  #seedOf(id: string): number {
    let seed = this.#seeds.get(id);
    if (seed === undefined) {
      seed = xxHash32(id, ID_SEED) >>> 0;
      this.#seeds.set(id, seed);
    }
    return seed;
  }
}
