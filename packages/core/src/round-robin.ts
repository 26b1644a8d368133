import type { Plugin } from './plugin.js';
import { STAGE_BALANCE } from './hooks.js';

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

export const ROUND_ROBIN = 'round-robin';

/** JSON Schema of round-robin's options: none (weights are set per backend). */
export const roundRobinSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {},
} as const;

export type RoundRobinOptions = Record<string, never>;

/**
 * Smooth weighted round-robin over the available backends (nginx's default balancer). It lives
 * in the core because it is the balancer a proxy gets when its config names none, which must work
 * with nothing but @wslb/core installed; @wslb/round-robin publishes it as a plugin package.
 */
export function roundRobin(_options: RoundRobinOptions = {}): Plugin {
  const picker = new SmoothWeightedRoundRobin();
  return {
    name: ROUND_ROBIN,
    balancer: true,
    apply(proxy) {
      proxy.hooks.select.tap({ name: ROUND_ROBIN, stage: STAGE_BALANCE }, (_ctx, candidates) =>
        picker.pick(candidates),
      );
      proxy.hooks.backendRemoved.tap(ROUND_ROBIN, (backend) => picker.forget(backend.id));
    },
  };
}

roundRobin.schema = roundRobinSchema;
