/*
 * The algorithm and the plugin live in @wslb/core, whose default balancer they are (a proxy
 * configured without a balancer needs no other package); this package is how a config names it.
 */
export {
  ROUND_ROBIN as PLUGIN_NAME,
  roundRobin as default,
  roundRobinSchema as schema,
  SmoothWeightedRoundRobin,
  type RoundRobinOptions,
  type Weighted,
} from '@wslb/core';
