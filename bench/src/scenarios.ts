import { type ChildProcess, fork } from 'node:child_process';
import type { Generator } from './generators.js';
import { machineBusyMicros, treeCpuMicros, treeRssKiB } from './proc.js';
import type { GenResult } from './protocol.js';
import type { Settings } from './settings.js';
import { mergeSorted, summarize } from './stats.js';
import type { RunningTarget } from './targets.js';

/** The load of each scenario and what it measures. */

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Backends {
  ports: number[];
  children: ChildProcess[];
  pids: number[];
}

export async function startBackends(count: number): Promise<Backends> {
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  for (let i = 0; i < count; i++) {
    const child = fork(new URL('./echo-server.ts', import.meta.url).pathname, [`b${i + 1}`], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(child);
    ports.push(
      await new Promise<number>((resolve, reject) => {
        child.once('message', (m: { port: number }) => resolve(m.port));
        child.once('exit', (code) => reject(new Error(`echo backend exited with ${code}`)));
      }),
    );
  }
  return { ports, children, pids: children.map((c) => c.pid!) };
}

/** CPU of the proxy, the generators and the backends over one measuring window. */
interface Window {
  results: GenResult[];
  elapsedS: number;
  proxyCpuUs: number;
  genCpuUs: number[];
  backendCpuUs: number;
  /** Everything else the machine ran meanwhile (other programs skew a shared machine). */
  otherCpuUs: number;
}

async function measure(
  gens: Generator[],
  target: RunningTarget,
  backends: Backends,
  settings: Settings,
): Promise<Window> {
  await sleep(settings.warmupMs);
  const proxyPids = target.pids();
  const proxyBefore = treeCpuMicros(proxyPids);
  const backendsBefore = treeCpuMicros(backends.pids);
  const genPids = gens.map((g) => g.pid);
  const genBefore = treeCpuMicros(genPids);
  const machineBefore = machineBusyMicros();
  const started = performance.now();
  await Promise.all(gens.map((g) => g.send({ cmd: 'mark' })));
  await sleep(settings.durationMs);
  const results = await Promise.all(gens.map((g) => g.stop()));
  const elapsedS = (performance.now() - started) / 1000;
  const proxyCpuUs = treeCpuMicros(proxyPids) - proxyBefore;
  const backendCpuUs = treeCpuMicros(backends.pids) - backendsBefore;
  const genCpuUs = treeCpuMicros(genPids) - genBefore;
  const otherCpuUs = machineBusyMicros() - machineBefore - proxyCpuUs - backendCpuUs - genCpuUs;
  return {
    results,
    elapsedS,
    proxyCpuUs,
    genCpuUs: results.map((r) => r.cpuMicros),
    backendCpuUs,
    otherCpuUs: Math.max(0, otherCpuUs),
  };
}

/** Shares of one core over the window: proxy, generators (sum and busiest) and backends. */
function cpuShares(prefix: string, w: Window, hasProxy: boolean): Record<string, number> {
  const pct = (us: number): number => (100 * us) / 1e6 / w.elapsedS;
  return {
    [`${prefix}_proxyPct`]: hasProxy ? pct(w.proxyCpuUs) : Number.NaN,
    [`${prefix}_genPct`]: pct(w.genCpuUs.reduce((a, b) => a + b, 0)),
    [`${prefix}_genMaxPct`]: pct(Math.max(...w.genCpuUs)),
    [`${prefix}_backendPct`]: pct(w.backendCpuUs),
    [`${prefix}_otherPct`]: pct(w.otherCpuUs),
    [`${prefix}_errors`]: w.results.reduce((a, r) => a + r.errors, 0),
  };
}

function firstError(w: Window): string | undefined {
  return w.results.find((r) => r.firstError)?.firstError;
}

function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

export async function runHandshakes(
  gens: Generator[],
  target: RunningTarget,
  backends: Backends,
  s: Settings,
) {
  const per = split(s.handshakeConcurrency, gens.length);
  await Promise.all(
    gens.map((g, i) => g.send({ cmd: 'handshakes', ports: target.ports, concurrency: per[i]! })),
  );
  const w = await measure(gens, target, backends, s);
  await Promise.all(gens.map((g) => g.send({ cmd: 'settle-handshakes' })));
  const count = w.results.reduce((a, r) => a + r.count, 0);
  const latency = summarize(mergeSorted(w.results.map((r) => r.samples)));
  return {
    figures: {
      hs_rate: count / w.elapsedS,
      hs_p50: latency.p50,
      hs_p99: latency.p99,
      hs_cpu: target.pids().length > 0 ? w.proxyCpuUs / count : Number.NaN,
      ...cpuShares('hs', w, target.pid !== undefined),
    },
    error: firstError(w),
  };
}

async function openAll(gens: Generator[], target: RunningTarget, total: number): Promise<number> {
  const per = split(total, gens.length);
  const opened = await Promise.all(
    gens.map((g, i) => g.send({ cmd: 'open', ports: target.ports, count: per[i]!, parallel: 100 })),
  );
  return opened.reduce((a, o) => a + (o as { opened: number }).opened, 0);
}

async function closeAll(gens: Generator[]): Promise<void> {
  await Promise.all(gens.map((g) => g.send({ cmd: 'close' })));
}

export async function runEcho(
  prefix: string,
  gens: Generator[],
  target: RunningTarget,
  backends: Backends,
  s: Settings,
  connections: number,
  size: number,
  window: number,
) {
  const opened = await openAll(gens, target, connections);
  await Promise.all(gens.map((g) => g.send({ cmd: 'echo', size, window })));
  const w = await measure(gens, target, backends, s);
  await Promise.all(gens.map((g) => g.send({ cmd: 'settle-echo' })));
  await closeAll(gens);
  const count = w.results.reduce((a, r) => a + r.count, 0);
  const bytes = w.results.reduce((a, r) => a + r.bytes, 0);
  const hasProxy = target.pid !== undefined;
  const figures: Record<string, number> = { ...cpuShares(prefix, w, hasProxy) };
  if (window === 1) {
    const rtt = summarize(mergeSorted(w.results.map((r) => r.samples)));
    Object.assign(figures, {
      [`${prefix}_rate`]: count / w.elapsedS,
      [`${prefix}_p50`]: rtt.p50,
      [`${prefix}_p99`]: rtt.p99,
      [`${prefix}_p999`]: rtt.p999,
      [`${prefix}_cpu`]: hasProxy ? w.proxyCpuUs / count : Number.NaN,
    });
  } else {
    const mb = bytes / 1e6;
    Object.assign(figures, {
      [`${prefix}_rate`]: mb / w.elapsedS,
      [`${prefix}_cpu`]: hasProxy ? w.proxyCpuUs / 1000 / mb : Number.NaN,
    });
  }
  if (opened < connections)
    figures[`${prefix}_errors`] = (figures[`${prefix}_errors`] ?? 0) + connections - opened;
  return {
    figures,
    error: firstError(w) ?? (opened < connections ? `opened ${opened}/${connections}` : undefined),
  };
}

export async function runIdle(
  gens: Generator[],
  target: RunningTarget,
  backends: Backends,
  s: Settings,
  probes: {
    atBaseline?: (target: RunningTarget) => Promise<void>;
    atPeak?: (target: RunningTarget) => Promise<void>;
  } = {},
) {
  // Warm the proxy up first (JIT, pools, heap growth), so the baseline is a running proxy's.
  await Promise.all(gens.map((g) => g.send({ cmd: 'handshakes', ports: target.ports, concurrency: 16 })));
  await sleep(s.idleWarmupMs);
  await Promise.all(gens.map((g) => g.send({ cmd: 'settle-handshakes' })));
  // Both readings after the same quiet time, so a garbage collector that tidies up when idle
  // (V8's memory reducer) has had the same chance before each.
  await sleep(s.idleSettleMs);
  const pids = target.pids();
  const before = treeRssKiB(pids);
  if (probes.atBaseline) await probes.atBaseline(target);
  const opened = await openAll(gens, target, s.tunnels);
  await sleep(s.idleSettleMs);
  const after = treeRssKiB(pids);
  if (probes.atPeak) await probes.atPeak(target);
  await closeAll(gens);
  const hasProxy = pids.length > 0;
  return {
    figures: {
      idle_tunnels: opened,
      idle_before: hasProxy ? before / 1024 : Number.NaN,
      idle_after: hasProxy ? after / 1024 : Number.NaN,
      idle_kib: hasProxy ? (after - before) / opened : Number.NaN,
      idle_errors: s.tunnels - opened,
    },
    error: opened < s.tunnels ? `opened ${opened}/${s.tunnels}` : undefined,
  };
}

export type Scenario = {
  /** Short name for --only. */
  key: string;
  name: string;
  run: (
    gens: Generator[],
    target: RunningTarget,
    backends: Backends,
    s: Settings,
  ) => Promise<{ figures: Record<string, number>; error: string | undefined }>;
  line: (f: Record<string, number>) => string;
};

const f1 = (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(1));
const f2 = (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(2));
/** A CPU share, or "-" where there is no proxy process (direct). */
const pct = (n: number | undefined): string =>
  n === undefined || !Number.isFinite(n) ? '-' : `${Math.round(n)}%`;

export function scenarios(s: Settings): Scenario[] {
  return [
    {
      key: 'idle',
      name: `idle tunnels x${s.tunnels}`,
      run: runIdle,
      line: (f) =>
        `${f.idle_tunnels} tunnels, RSS +${f1((f.idle_after ?? 0) - (f.idle_before ?? 0))} MiB, ${f2(f.idle_kib)} KiB/tunnel`,
    },
    {
      key: 'handshakes',
      name: 'handshakes',
      run: runHandshakes,
      line: (f) =>
        `${Math.round(f.hs_rate!)}/s p50 ${f2(f.hs_p50)} p99 ${f2(f.hs_p99)} ms, ${f1(f.hs_cpu)} us/handshake, proxy ${pct(f.hs_proxyPct)} gen ${pct(f.hs_genPct)}`,
    },
    ...[100, 1000].map((n) => ({
      key: `echo${n}`,
      name: `echo 64 B x${n}`,
      run: (g: Generator[], t: RunningTarget, b: Backends, st: Settings) =>
        runEcho(`e${n}`, g, t, b, st, n, 64, 1),
      line: (f: Record<string, number>) =>
        `${Math.round(f[`e${n}_rate`]!)} msg/s p50 ${f2(f[`e${n}_p50`])} p99 ${f2(f[`e${n}_p99`])} p99.9 ${f2(f[`e${n}_p999`])} ms, ${f2(f[`e${n}_cpu`])} us/msg, proxy ${pct(f[`e${n}_proxyPct`])} gen ${pct(f[`e${n}_genPct`])}`,
    })),
    {
      key: 'bulk',
      name: 'bulk 64 KiB',
      run: (g, t, b, st) => runEcho('bulk', g, t, b, st, st.bulkConnections, 64 * 1024, st.bulkWindow),
      line: (f) =>
        `${f1(f.bulk_rate)} MB/s, ${f2(f.bulk_cpu)} ms/MB, proxy ${pct(f.bulk_proxyPct)} gen ${pct(f.bulk_genPct)}`,
    },
  ];
}
