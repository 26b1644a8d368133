import { type Plugin, STAGE_BALANCE, WslbError, formatIssueList, validatePluginOptions } from '@wslb/core';
import { LeastConnections } from './least-connections.js';

export { LeastConnections, type LeastConnectionsOptions, type Loaded } from './least-connections.js';

export const PLUGIN_NAME = 'least-connections';

/** JSON Schema of the options. */
export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    choices: {
      description:
        'Compare this many randomly drawn backends instead of all of them (2 = power of two choices). Unset: compare all.',
      type: 'integer',
      minimum: 2,
      maximum: 16,
    },
  },
} as const;

export interface LeastConnectionsPluginOptions {
  /** Power of `choices` random choices; unset compares every available backend. */
  choices?: number;
}

function checked(options: LeastConnectionsPluginOptions): LeastConnectionsPluginOptions {
  const issues = validatePluginOptions(schema, options);
  if (issues.length > 0) {
    throw new WslbError('WSLB_ERR_CONFIG_INVALID', `${PLUGIN_NAME} options: ${formatIssueList(issues)}`);
  }
  return options;
}

/**
 * Sends each new connection to the available backend with the fewest live connections per unit
 * of weight; a WebSocket counts for as long as its tunnel lives. Equal loads rotate.
 */
export default function leastConnections(options: LeastConnectionsPluginOptions = {}): Plugin {
  let picker = new LeastConnections(checked(options));
  return {
    name: PLUGIN_NAME,
    balancer: true,
    apply(proxy) {
      proxy.hooks.select.tap({ name: PLUGIN_NAME, stage: STAGE_BALANCE }, (_ctx, candidates) =>
        picker.pick(candidates),
      );
      proxy.hooks.backendRemoved.tap(PLUGIN_NAME, (backend) => picker.forget(backend.id));
    },
    reconfigure(next) {
      // The counts live in the core's backends, so a new picker loses nothing but tie order.
      picker = new LeastConnections(checked((next ?? {}) as LeastConnectionsPluginOptions));
    },
  };
}

leastConnections.schema = schema;
