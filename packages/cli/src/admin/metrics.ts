import type { Proxy } from '@wslb/core';
import { HealthCheckPlugin } from '@wslb/health-check';
import type { MetricObjectWithValues, MetricValue, Registry as PromRegistry } from 'prom-client';
import { Counter, Gauge, Histogram, Registry, aggregatorRegistry } from './prom-client-parts.js';

/** Prometheus metrics of one proxy, on a registry of its own (never prom-client's global one). */
export interface ProxyMetrics {
  readonly registry: PromRegistry;
  /** The Prometheus text exposition (on a primary: its control plane plus its workers' traffic). */
  text(): Promise<string>;
  readonly contentType: string;
}

const byProxy = new WeakMap<Proxy, ProxyMetrics>();

/** Handshake durations: from accepting the request to the 101 going out. */
const HANDSHAKE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function key(...parts: string[]): string {
  return parts.join('\0');
}

function addTo(map: Map<string, number>, k: string, n: number): void {
  if (n !== 0) map.set(k, (map.get(k) ?? 0) + n);
}

/**
 * The metrics of a proxy, created once per proxy (hooks cannot be untapped, so taps are made
 * once). Counters of finished connections are kept by close taps; live tunnels and backend
 * gauges are read at scrape time, so nothing is counted per data chunk.
 */
export function proxyMetrics(proxy: Proxy): ProxyMetrics {
  const existing = byProxy.get(proxy);
  if (existing) return existing;

  const registry = new Registry();
  /** Finished connections per backend and kind; bytes per backend and direction. */
  const closedConnections = new Map<string, number>();
  const closedBytes = new Map<string, number>();

  new Gauge({
    name: 'wslb_connections_active',
    help: 'Live connections per backend (dials, handshakes, tunnels and HTTP requests in flight)',
    labelNames: ['backend'],
    registers: [registry],
    collect() {
      this.reset();
      for (const b of proxy.pool.list()) this.set({ backend: b.id }, b.active);
      for (const b of proxy.pool.retired()) this.set({ backend: b.id }, b.active);
    },
  });

  new Counter({
    name: 'wslb_connections_total',
    help: 'Connections served per backend and kind (ws, http, tcp), live tunnels included',
    labelNames: ['backend', 'kind'],
    registers: [registry],
    collect() {
      const now = new Map(closedConnections);
      for (const t of proxy.liveTunnels())
        if (t.ctx.backend) addTo(now, key(t.ctx.backend.id, t.ctx.kind), 1);
      this.reset();
      for (const [k, n] of now) {
        const [backend, kind] = k.split('\0') as [string, string];
        this.inc({ backend, kind }, n);
      }
    },
  });

  new Gauge({
    name: 'wslb_backend_up',
    help: 'Whether a backend takes new connections (1 up, 0 down or draining)',
    labelNames: ['backend'],
    registers: [registry],
    collect() {
      this.reset();
      for (const b of proxy.pool.list()) this.set({ backend: b.id }, b.state === 'up' ? 1 : 0);
    },
  });

  new Gauge({
    name: 'wslb_backend_state',
    help: 'State of each backend: 1 for its current state (up, down, draining), 0 for the others',
    labelNames: ['backend', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const b of proxy.pool.list()) {
        for (const state of ['up', 'down', 'draining'])
          this.set({ backend: b.id, state }, b.state === state ? 1 : 0);
      }
    },
  });

  new Counter({
    name: 'wslb_backend_failures_total',
    help: 'Failed dials per backend (refused, reset, connect timeout)',
    labelNames: ['backend'],
    registers: [registry],
    collect() {
      this.reset();
      for (const b of proxy.pool.list()) if (b.failures > 0) this.inc({ backend: b.id }, b.failures);
    },
  });

  new Counter({
    name: 'wslb_bytes_total',
    help: 'Bytes proxied per backend and direction, live tunnels included',
    labelNames: ['backend', 'direction'],
    registers: [registry],
    collect() {
      const now = new Map(closedBytes);
      for (const t of proxy.liveTunnels()) {
        if (!t.ctx.backend) continue;
        addTo(now, key(t.ctx.backend.id, 'client_to_backend'), t.bytesIn);
        addTo(now, key(t.ctx.backend.id, 'backend_to_client'), t.bytesOut);
      }
      this.reset();
      for (const [k, n] of now) {
        const [backend, direction] = k.split('\0') as [string, string];
        this.inc({ backend, direction }, n);
      }
    },
  });

  const handshakes = new Histogram({
    name: 'wslb_handshake_duration_seconds',
    help: 'Time from accepting an upgrade request to the 101 sent to the client',
    buckets: HANDSHAKE_BUCKETS,
    registers: [registry],
  });

  const closed = new Counter({
    name: 'wslb_connections_closed_total',
    help: 'Finished connections by close reason (client-error counts ordinary client resets)',
    labelNames: ['reason'],
    registers: [registry],
  });

  const checks = new Counter({
    name: 'wslb_health_checks_total',
    help: 'Active health check results per backend (success, failure)',
    labelNames: ['backend', 'result'],
    registers: [registry],
  });

  new Gauge({
    name: 'wslb_proxy_connections_active',
    help: 'Live client connections of the proxy',
    registers: [registry],
    collect() {
      this.set(proxy.connections.active);
    },
  });

  new Gauge({
    name: 'wslb_uptime_seconds',
    help: 'Seconds since the proxy started',
    registers: [registry],
    collect() {
      this.set(proxy.uptime);
    },
  });

  proxy.hooks.open.tap('wslb:metrics', (ctx) => {
    handshakes.observe((Date.now() - ctx.startTime) / 1000);
  });
  proxy.hooks.close.tap('wslb:metrics', (ctx, info) => {
    closed.inc({ reason: info.reason });
    const backend = info.backend?.id;
    if (!backend) return;
    addTo(closedConnections, key(backend, ctx.kind), 1);
    addTo(closedBytes, key(backend, 'client_to_backend'), info.bytesIn);
    addTo(closedBytes, key(backend, 'backend_to_client'), info.bytesOut);
  });
  HealthCheckPlugin.getHooks(proxy).check.tap('wslb:metrics', (backend, result) => {
    checks.inc({ backend: backend.id, result: result.ok ? 'success' : 'failure' });
  });

  const metrics: ProxyMetrics = {
    registry,
    text: () => registry.metrics(),
    contentType: registry.contentType,
  };
  byProxy.set(proxy, metrics);
  return metrics;
}

type MetricJson = MetricObjectWithValues<MetricValue<string>>;

/** What a primary reports itself: health and backend states live in its control plane. */
const CONTROL_PLANE_METRICS = new Set([
  'wslb_backend_up',
  'wslb_backend_state',
  'wslb_health_checks_total',
  'wslb_uptime_seconds',
]);

/**
 * On the primary of `workers: N`: /metrics joins the control plane's own metrics with the
 * traffic metrics of every worker, summed per label set (prom-client's cluster aggregation).
 */
export function useClusterMetrics(proxy: Proxy, workerMetrics: () => Promise<unknown[][]>): void {
  const metrics = proxyMetrics(proxy) as { -readonly [K in keyof ProxyMetrics]: ProxyMetrics[K] };
  metrics.text = async () => {
    const own = (await metrics.registry.getMetricsAsJSON()).filter((m) => CONTROL_PLANE_METRICS.has(m.name));
    const workers = (await workerMetrics()).map((list) =>
      (list as MetricJson[]).filter((m) => !CONTROL_PLANE_METRICS.has(m.name)),
    );
    return aggregatorRegistry()
      .aggregate([own as MetricJson[], ...workers])
      .metrics();
  };
}
