import { type Plugin, STAGE_BALANCE, WslbError, formatIssueList, validatePluginOptions } from '@wslb/core';
import { KEY_PATTERN, type KeySource, keyOf, parseKeySpec } from './key.js';
import { WeightedRendezvous } from './rendezvous.js';

export { WeightedRendezvous, type Weighted } from './rendezvous.js';
export { type KeySource, addressKey, keyOf, parseKeySpec } from './key.js';

export const PLUGIN_NAME = 'ip-hash';

/** JSON Schema of the options. */
export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    key: {
      description:
        'What to hash: "ip" (the client address), "header:NAME", "query:NAME" or "cookie:NAME". A request without that key is hashed by its client address.',
      type: 'string',
      pattern: KEY_PATTERN,
      default: 'ip',
    },
    ipv4Prefix: {
      description: 'Leading bits of an IPv4 client address that count (24: nginx ip_hash, a /24 per key).',
      type: 'integer',
      minimum: 0,
      maximum: 32,
      default: 32,
    },
    ipv6Prefix: {
      description: 'Leading bits of an IPv6 client address that count.',
      type: 'integer',
      minimum: 0,
      maximum: 128,
      default: 128,
    },
  },
} as const;

export interface IpHashOptions {
  key?: string;
  ipv4Prefix?: number;
  ipv6Prefix?: number;
}

interface Settings {
  source: KeySource;
  ipv4Prefix: number;
  ipv6Prefix: number;
}

function settingsOf(options: IpHashOptions): Settings {
  const issues = validatePluginOptions(schema, options);
  if (issues.length > 0) {
    throw new WslbError('WSLB_ERR_CONFIG_INVALID', `${PLUGIN_NAME} options: ${formatIssueList(issues)}`);
  }
  return {
    source: parseKeySpec(options.key ?? 'ip'),
    ipv4Prefix: options.ipv4Prefix ?? 32,
    ipv6Prefix: options.ipv6Prefix ?? 128,
  };
}

/**
 * Consistent hashing: a connection goes to the backend that owns its key among the available
 * ones. When a backend is down or draining only its keys move, and they return with it.
 */
export default function ipHash(options: IpHashOptions = {}): Plugin {
  let settings = settingsOf(options);
  const hasher = new WeightedRendezvous();
  return {
    name: PLUGIN_NAME,
    balancer: true,
    apply(proxy) {
      proxy.hooks.select.tap({ name: PLUGIN_NAME, stage: STAGE_BALANCE }, (ctx, candidates) =>
        hasher.pick(keyOf(ctx, settings.source, settings.ipv4Prefix, settings.ipv6Prefix), candidates),
      );
      proxy.hooks.backendRemoved.tap(PLUGIN_NAME, (backend) => hasher.forget(backend.id));
    },
    reconfigure(next) {
      settings = settingsOf((next ?? {}) as IpHashOptions);
    },
  };
}

ipHash.schema = schema;
