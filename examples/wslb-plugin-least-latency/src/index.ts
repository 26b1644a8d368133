import { performance } from 'node:perf_hooks';
import {
  type Backend,
  type ConnectionContext,
  type Plugin,
  type PluginHookSet,
  type PluginHost,
  type TapOnly,
  STAGE_BALANCE,
  SyncHook,
  createPluginHooks,
} from '@wslb/core';
import { LatencyTable } from './latency-table.js';

export { LatencyTable, type Candidate, type LatencyTableOptions } from './latency-table.js';

export const PLUGIN_NAME = 'least-latency';

/** JSON Schema of the options (validated by wslb before the factory runs). */
export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    decay: {
      type: 'integer',
      minimum: 1,
      default: 10000,
      description: 'Time constant of the latency estimate in ms: how fast old samples stop counting.',
    },
    failurePenalty: {
      type: 'integer',
      minimum: 0,
      default: 5000,
      description: 'Latency in ms recorded when a dial fails or a WebSocket upgrade gets a 5xx.',
    },
    measureHttp: {
      type: 'boolean',
      default: false,
      description: 'Also measure plain HTTP requests (off: long-polls would read as slow backends).',
    },
  },
} as const;

export interface LeastLatencyOptions {
  decay?: number;
  failurePenalty?: number;
  measureHttp?: boolean;
}

/** What the `sample` hook receives for each measurement. */
export interface LatencySample {
  readonly backend: Backend;
  /** The measured time from the upgrade request to the backend's answer, or the penalty. */
  readonly ms: number;
  /** The backend's estimate after this sample. */
  readonly estimate: number;
  /** Whether the sample is a penalty (failed dial or 5xx answer). */
  readonly failed: boolean;
}

/** Codes of a connection that failed on the backend's side after the request was sent. */
const BACKEND_FAULTS = new Set([
  'WSLB_ERR_HANDSHAKE_TIMEOUT',
  'WSLB_ERR_RESPONSE_TIMEOUT',
  'WSLB_ERR_BACKEND_CLOSED',
  'WSLB_ERR_BACKEND_BAD_RESPONSE',
  'WSLB_ERR_BACKEND_HEADERS_TOO_LARGE',
]);

/** The hooks this plugin offers other plugins. */
export interface LeastLatencyHooks {
  /** Each latency sample, after the estimate was updated: for metrics, logs, other policies. */
  readonly sample: SyncHook<[LatencySample]>;
}

const published: PluginHookSet<LeastLatencyHooks> = createPluginHooks(() => ({
  sample: new SyncHook<[LatencySample]>(['sample']),
}));

/** This plugin's hooks on `proxy`, to tap: `getHooks(proxy).sample.tap(name, (s) => ...)`. */
export const getHooks: (proxy: PluginHost) => TapOnly<LeastLatencyHooks> = published.getHooks;

/** The plugin object, with read access to its estimates. */
export interface LeastLatencyPlugin extends Plugin {
  /** The current estimate of a backend in ms, or undefined when it is unmeasured. */
  estimate(backendId: string): number | undefined;
}

function settings(options: LeastLatencyOptions): Required<LeastLatencyOptions> {
  return {
    decay: options.decay ?? 10000,
    failurePenalty: options.failurePenalty ?? 5000,
    measureHttp: options.measureHttp ?? false,
  };
}

/**
 * Least latency: each new connection goes to the backend with the lowest
 * (upgrade latency estimate + 1 ms) x (live connections + 1) / weight. The latency is the time
 * from writing the upgrade request to the backend's answer, as a peak EWMA; failed dials and 5xx
 * answers count as `failurePenalty`. A backend without an estimate (new, or back up) gets one
 * connection to measure it before the others.
 */
export default function leastLatency(options: LeastLatencyOptions = {}): LeastLatencyPlugin {
  let current = settings(options);
  const table = new LatencyTable({ decay: current.decay });

  return {
    name: PLUGIN_NAME,
    balancer: true,
    core: '^0.1.0',
    estimate: (backendId) => table.estimate(backendId),
    reconfigure(next) {
      current = settings(next as LeastLatencyOptions);
      table.decay = current.decay;
    },
    apply(proxy: PluginHost) {
      // Per connection: the backend probed (unmeasured when chosen) and when the request left.
      const probes = new WeakMap<ConnectionContext, string>();
      const started = new WeakMap<ConnectionContext, { backend: Backend; at: number }>();

      const record = (backend: Backend, ms: number, failed: boolean): void => {
        const estimate = table.observe(backend.id, ms);
        const hooks = published.of(proxy);
        if (hooks.sample.isUsed()) hooks.sample.call({ backend, ms, estimate, failed });
      };
      const settle = (ctx: ConnectionContext): void => {
        const id = probes.get(ctx);
        if (id === undefined) return;
        probes.delete(ctx);
        table.settle(id);
      };

      proxy.hooks.select.tap({ name: PLUGIN_NAME, stage: STAGE_BALANCE }, (ctx, candidates) => {
        // A retry after a failed dial selects again for the same connection.
        settle(ctx);
        const chosen = table.pick(candidates);
        if (chosen && !table.measured(chosen.id)) {
          table.probe(chosen.id);
          probes.set(ctx, chosen.id);
        }
        return chosen;
      });
      // Late in the handshake stage, so that other taps' work is not counted against the backend.
      proxy.hooks.handshake.tap({ name: PLUGIN_NAME, stage: 1000 }, (ctx) => {
        if (!ctx.backend || (ctx.kind === 'http' && !current.measureHttp)) return;
        started.set(ctx, { backend: ctx.backend, at: performance.now() });
      });
      proxy.hooks.response.tap({ name: PLUGIN_NAME, stage: -1000 }, (ctx, response) => {
        const start = started.get(ctx);
        if (!start) return;
        started.delete(ctx);
        // A fast error must not attract traffic.
        if (response.status >= 500) record(start.backend, current.failurePenalty, true);
        else record(start.backend, performance.now() - start.at, false);
        settle(ctx);
      });
      proxy.hooks.backendFailure.tap(PLUGIN_NAME, (backend) => {
        record(backend, current.failurePenalty, true);
      });
      proxy.hooks.close.tap(PLUGIN_NAME, (ctx, info) => {
        const start = started.get(ctx);
        if (start) {
          // The request left but no answer came: a backend that hangs or drops upgrades is slow.
          started.delete(ctx);
          if (info.error && BACKEND_FAULTS.has(info.error.code))
            record(start.backend, current.failurePenalty, true);
        }
        settle(ctx);
      });
      proxy.hooks.backendState.tap(PLUGIN_NAME, (backend, previous) => {
        // Back from down: what was measured before says nothing about the restarted process.
        if (previous === 'down' && backend.state === 'up') table.forget(backend.id);
      });
      proxy.hooks.backendRemoved.tap(PLUGIN_NAME, (backend) => table.forget(backend.id));
    },
  };
}

leastLatency.schema = schema;
leastLatency.getHooks = getHooks;
