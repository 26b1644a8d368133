import { type Plugin, STAGE_BALANCE } from '@wslb/core';
import { SmoothWeightedRoundRobin } from './smooth-weighted.js';

export { SmoothWeightedRoundRobin, type Weighted } from './smooth-weighted.js';

export const PLUGIN_NAME = 'round-robin';

/** JSON Schema of the options: none. */
export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {},
} as const;

export type RoundRobinOptions = Record<string, never>;

/** Smooth weighted round-robin over the available backends (nginx's default balancer). */
export default function roundRobin(_options: RoundRobinOptions = {}): Plugin {
  const picker = new SmoothWeightedRoundRobin();
  return {
    name: PLUGIN_NAME,
    balancer: true,
    apply(proxy) {
      proxy.hooks.select.tap({ name: PLUGIN_NAME, stage: STAGE_BALANCE }, (_ctx, candidates) =>
        picker.pick(candidates),
      );
      proxy.hooks.backendRemoved.tap(PLUGIN_NAME, (backend) => picker.forget(backend.id));
    },
  };
}

roundRobin.schema = schema;
