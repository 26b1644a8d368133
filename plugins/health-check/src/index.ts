import {
  type Backend,
  type Plugin,
  type PluginConfigProblem,
  type PluginHost,
  STAGE_BALANCE,
  SyncHook,
  type TapOnly,
  createPluginHooks,
} from '@wslb/core';
import { ActiveChecker, type CheckResult } from './checker.js';
import {
  type HealthCheckOptions,
  parseStatusRanges,
  resolveSettings,
  schema,
  type Settings,
} from './options.js';
import type { ProbeTarget } from './probe.js';
import { SlowStart } from './slow-start.js';
import { HealthTracker } from './tracker.js';

export { ActiveChecker, type CheckResult } from './checker.js';
export {
  DEFAULTS,
  parseStatusRanges,
  resolveSettings,
  schema,
  statusAccepted,
  type ActiveSettings,
  type CheckType,
  type HealthCheckOptions,
  type PassiveSettings,
  type Settings,
  type StatusRange,
} from './options.js';
export { probe, probeHttp, probeTcp, probeWs, type ProbeResult, type ProbeTarget } from './probe.js';
export { SlowStart } from './slow-start.js';
export { HealthTracker, type TrackedPool } from './tracker.js';

export const PLUGIN_NAME = 'health-check';
/** Stage of the slow-start select tap: after overrides (stickiness), before balancers. */
export const STAGE_SLOW_START = STAGE_BALANCE - 1;

/** Hooks this plugin offers to others (metrics, alerting), one set per proxy. */
export interface HealthCheckHooks {
  /** Every active check result, after it was applied to the backend's state. */
  readonly check: SyncHook<[Backend, CheckResult]>;
}

/*
 * Created with the core's createPluginHooks: other plugins get tap methods only, and their taps
 * become no-ops when a reload removes them, like their taps on the proxy's own hooks.
 */
const published = createPluginHooks<HealthCheckHooks>(() => ({
  check: new SyncHook<[Backend, CheckResult]>(['backend', 'result']),
}));

/** The probe's view of a backend, read at each check so that reloads are picked up. */
export function probeTarget(backend: Backend): ProbeTarget {
  return {
    id: backend.id,
    hostname: backend.hostname,
    port: backend.port,
    secure: backend.secure,
    basePath: backend.basePath,
    hostHeader: backend.hostHeader,
    tls: backend.tls,
    proxyProtocol: backend.proxyProtocol,
  };
}

/**
 * Active checks (tcp, http, ws) and passive checks (failed dials) of every backend in the pool.
 * Backends added by a reload are checked from then on; removed ones stop being checked.
 */
export class HealthCheckPlugin implements Plugin {
  readonly name = PLUGIN_NAME;
  #settings: Settings;
  #proxy: PluginHost | undefined;
  #tracker: HealthTracker | undefined;
  #checker: ActiveChecker | undefined;
  readonly #slowStart: SlowStart;

  constructor(options: HealthCheckOptions = {}) {
    this.#settings = resolveSettings(options);
    this.#slowStart = new SlowStart(this.#settings.slowStart);
  }

  /** The hooks of the health checks of `proxy`, to tap (created on first use, like webpack's). */
  static getHooks(proxy: PluginHost): TapOnly<HealthCheckHooks> {
    return published.getHooks(proxy);
  }

  get settings(): Settings {
    return this.#settings;
  }

  /** The tracker that applies results (for status pages and tests); undefined before apply. */
  get tracker(): HealthTracker | undefined {
    return this.#tracker;
  }

  apply(proxy: PluginHost): void {
    // Slow start shapes selection, so it runs wherever connections are balanced.
    proxy.hooks.backendState.tap(PLUGIN_NAME, (backend, previous) => {
      if (backend.state === 'up' && previous === 'down') this.#slowStart.recovered(backend);
      else if (backend.state !== 'up') this.#slowStart.forget(backend.id);
    });
    proxy.hooks.select.tap({ name: PLUGIN_NAME, stage: STAGE_SLOW_START }, (_ctx, candidates) =>
      this.#slowStart.pick(candidates),
    );
    // With several worker processes, checks run once, in the primary, which sends every worker
    // the resulting states: a worker runs no check of its own.
    if (proxy.role === 'worker') return;
    this.#proxy = proxy;
    this.#tracker = new HealthTracker(proxy.pool, this.#settings);
    for (const backend of proxy.pool.list()) this.#watch(backend);
    this.#startChecker();
    proxy.hooks.backendAdded.tap(PLUGIN_NAME, (backend) => this.#watch(backend));
    proxy.hooks.backendRemoved.tap(PLUGIN_NAME, (backend) => {
      this.#checker?.remove(backend.id);
      this.#tracker?.forget(backend.id);
      this.#slowStart.forget(backend.id);
    });
    // Passive checks: taps stay cheap no-ops while `passive` is off (a reload may turn it on).
    proxy.hooks.backendFailure.tap(PLUGIN_NAME, (backend, err) => {
      if (this.#settings.passive) this.#tracker?.dialFailed(backend, err.message);
    });
    // A backend that answered again: its failed dials are forgotten (reported by every worker).
    proxy.hooks.backendSuccess.tap(PLUGIN_NAME, (backend) => {
      if (this.#settings.passive) this.#tracker?.dialSucceeded(backend);
    });
  }

  reconfigure(options: unknown): void {
    this.#settings = resolveSettings((options ?? {}) as HealthCheckOptions);
    this.#slowStart.defaultMs = this.#settings.slowStart;
    this.#tracker?.reconfigure(this.#settings);
    this.#checker?.stop();
    this.#checker = undefined;
    this.#startChecker();
  }

  close(): void {
    this.#checker?.stop();
    this.#checker = undefined;
    this.#tracker?.stop();
  }

  #watch(backend: Backend): void {
    this.#tracker?.track(backend);
    this.#checker?.add(backend.id, () => probeTarget(backend));
  }

  #startChecker(): void {
    const proxy = this.#proxy;
    const active = this.#settings.active;
    if (!proxy || !active) return;
    const checker = new ActiveChecker(active, (result) => this.#onResult(result));
    this.#checker = checker;
    for (const backend of proxy.pool.list()) checker.add(backend.id, () => probeTarget(backend));
  }

  #onResult(result: CheckResult): void {
    const proxy = this.#proxy;
    const backend = proxy?.pool.get(result.backend);
    if (!proxy || !backend || !this.#tracker) return;
    this.#tracker.applyCheck(result);
    proxy.log.debug(
      {
        backend: backend.id,
        check: result.type,
        ok: result.ok,
        reason: result.reason,
        ms: result.durationMs,
      },
      'health check',
    );
    const hooks = published.of(proxy);
    if (!hooks.check.isUsed()) return;
    try {
      hooks.check.call(backend, result);
    } catch (err) {
      proxy.log.error({ plugin: PLUGIN_NAME, err: (err as Error).message }, 'health-check check hook failed');
    }
  }
}

/** The plugin factory (default export): `healthCheck({ type: 'ws', path: '/', interval: 3000 })`. */
export default function healthCheck(options: HealthCheckOptions = {}): HealthCheckPlugin {
  return new HealthCheckPlugin(options);
}

/**
 * Rules the schema cannot state: each `expect` range runs from low to high (for `--check` and
 * before start or reload, as config errors at `/plugins/<i>/options/expect`).
 */
export function checkConfig(options: HealthCheckOptions): PluginConfigProblem[] {
  if (options.expect === undefined) return [];
  try {
    parseStatusRanges(options.expect);
    return [];
  } catch (err) {
    return [{ path: '/expect', message: (err as Error).message }];
  }
}

healthCheck.schema = schema;
healthCheck.checkConfig = checkConfig;
healthCheck.getHooks = HealthCheckPlugin.getHooks;
