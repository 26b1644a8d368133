/**
 * nginx's smooth weighted round-robin: each pick adds every candidate's weight to its current
 * value, takes the largest, and subtracts the total from the winner. Weights 5,1,1 give
 * a a b a c a a (interleaved), not a a a a a b c.
 */
export interface Weighted {
  readonly id: string;
  readonly weight: number;
}

export class SmoothWeightedRoundRobin {
  /** Current value per backend id; survives candidate-list changes (backends going down/up). */
  readonly #current = new Map<string, number>();

  pick<T extends Weighted>(candidates: readonly T[]): T | undefined {
    if (candidates.length === 0) return undefined;
    if (candidates.length === 1) return candidates[0];
    let total = 0;
    let best: T | undefined;
    let bestValue = -Infinity;
    for (const c of candidates) {
      const weight = c.weight > 0 ? c.weight : 1;
      const value = (this.#current.get(c.id) ?? 0) + weight;
      this.#current.set(c.id, value);
      total += weight;
      if (value > bestValue) {
        bestValue = value;
        best = c;
      }
    }
    this.#current.set(best!.id, bestValue - total);
    return best;
  }

  /** Forgets a backend (removed from the pool). */
  forget(id: string): void {
    this.#current.delete(id);
  }
}
