import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';

/*
 * prom-client's entry loads all of it: default process metrics, Summary with its t-digest, the
 * push gateway and the cluster aggregator, ~0.9 MiB of heap in each process with an admin API.
 * The four classes the metrics use cost ~0.1 MiB loaded alone. That heap matters on the data
 * path: V8 starts incremental marking only above 8 MiB of heap, and above it every burst of
 * read buffers (bulk transfer) ends in a full mark-compact (bench/RESULTS.md, history step 06).
 */
const require = createRequire(import.meta.url);

export const Registry = require('prom-client/lib/registry') as typeof PromClient.Registry;
export const Counter = require('prom-client/lib/counter') as typeof PromClient.Counter;
export const Gauge = require('prom-client/lib/gauge') as typeof PromClient.Gauge;
export const Histogram = require('prom-client/lib/histogram') as typeof PromClient.Histogram;

/** The cluster aggregation, needed only by the primary of `workers: N`. */
export function aggregatorRegistry(): typeof PromClient.AggregatorRegistry {
  return require('prom-client/lib/cluster') as typeof PromClient.AggregatorRegistry;
}
