import { type EchoBackend, openClient, startEchoBackend } from '@wslb/testing';
import type WebSocket from 'ws';
import { CYCLE_KINDS, type CycleKind, cycle } from './churn.js';
import { Rng } from './fuzz.js';
import { mib } from './proc.js';
import { type ChildStats, type LiveConnection, startProxyProcess } from './proxy-process.js';

/*
 * Mixed load through a proxy in its own process: WebSocket clients that echo numbered messages
 * and check each reply, short connects, connect/abort cycles, plain HTTP requests, and backends
 * killed and restarted on their port. Samples the proxy's RSS, heap (after a full GC) and fds,
 * and judges the run: no lost or corrupted message, no unexpected failure, no leak.
 */

export interface SoakOptions {
  durationMs: number;
  /** Concurrent echo clients. */
  echoClients: number;
  /** Mean seconds between backend restarts (0: none). */
  restartEvery: number;
  seed: number;
  /** Sampling interval (ms). */
  sampleEvery?: number;
  /** Heap growth tolerated between the warmed-up baseline and the end. */
  maxHeapGrowth?: number;
  log?: (line: string) => void;
}

export interface SoakSample {
  t: number;
  stats: ChildStats;
}

export interface SoakReport {
  counts: {
    wsOpened: number;
    wsClosedClean: number;
    messagesSent: number;
    messagesEchoed: number;
    shortConnects: number;
    aborts: number;
    httpOk: number;
    restarts: number;
    proxyConnections: number;
  };
  /** Failures expected around a backend restart (connections on the killed backend). */
  expected: Record<string, number>;
  /** Everything else; any entry fails the run. */
  errors: Record<string, number>;
  samples: SoakSample[];
  leaks: string[];
  /** Connections the proxy still counted at the end (to tell which path kept them). */
  stuck: LiveConnection[];
  crashed: string | undefined;
  ok: boolean;
}

/** After a backend is killed, failures of connections on it are expected for this long. */
const RESTART_GRACE_MS = 3000;

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const { durationMs, echoClients, restartEvery, seed } = options;
  const log = options.log ?? (() => {});
  const maxHeapGrowth = options.maxHeapGrowth ?? 8 * 1024 * 1024;
  const rng = new Rng(seed, 0);
  const counts: SoakReport['counts'] = {
    wsOpened: 0,
    wsClosedClean: 0,
    messagesSent: 0,
    messagesEchoed: 0,
    shortConnects: 0,
    aborts: 0,
    httpOk: 0,
    restarts: 0,
    proxyConnections: 0,
  };
  const expected: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const samples: SoakSample[] = [];
  const note = (into: Record<string, number>, kind: string): void => {
    into[kind] = (into[kind] ?? 0) + 1;
  };

  // Backends on three loopback addresses, so the proxy's own connections never run out of ports.
  const backends: EchoBackend[] = [];
  for (let i = 1; i <= 3; i++) backends.push(await startEchoBackend({ id: `b${i}`, host: `127.0.0.${i}` }));
  const killedAt = new Map<string, number>();
  const recentlyKilled = (id: string | undefined, since: number): boolean => {
    const at = id ? killedAt.get(id) : undefined;
    return at !== undefined && at >= since - RESTART_GRACE_MS;
  };
  const anyRecentlyKilled = (): boolean =>
    [...killedAt.values()].some((at) => Date.now() - at < RESTART_GRACE_MS);

  const proxy = await startProxyProcess({
    backends: backends.map((b) => ({ id: b.id, url: b.url })),
    timeouts: { connect: 1000, handshake: 3000, response: 5000 },
  });
  const url = proxy.url;
  const httpUrl = url.replace('ws:', 'http:');
  let stopping = false;
  const started = Date.now();
  const until = started + durationMs;
  log(
    `soak: ${(durationMs / 60_000).toFixed(2)} min, ${echoClients} echo clients, seed ${seed}, proxy pid ${proxy.child.pid}`,
  );

  const echo = (ws: WebSocket, payload: string): Promise<string | undefined> =>
    new Promise((resolve) => {
      const done = (value: string | undefined): void => {
        clearTimeout(timer);
        ws.off('message', onMessage);
        ws.off('close', onClose);
        resolve(value);
      };
      const onMessage = (data: WebSocket.RawData): void => done(data.toString());
      const onClose = (): void => done(undefined);
      const timer = setTimeout(() => done(undefined), 5000);
      ws.on('message', onMessage);
      ws.once('close', onClose);
      counts.messagesSent++;
      ws.send(payload);
    });

  /** One echo client's life: open, send numbered messages one at a time, check each, close. */
  const echoSession = async (w: number): Promise<void> => {
    let client;
    const openedAt = Date.now();
    try {
      client = await openClient(`${url}/soak/${w}`, {}, 5000);
    } catch {
      note(anyRecentlyKilled() ? expected : errors, 'ws-open-failed');
      await new Promise((r) => setTimeout(r, 200));
      return;
    }
    counts.wsOpened++;
    const { ws, backend } = client;
    let closedUnexpectedly = false;
    ws.on('error', () => {});
    ws.once('close', () => (closedUnexpectedly = !stopping));
    const messages = 10 + rng.int(190);
    for (let i = 0; i < messages && !stopping && ws.readyState === ws.OPEN; i++) {
      const payload = `${w}:${i}:${'x'.repeat(rng.int(2000))}`;
      const reply = await echo(ws, payload);
      if (reply === payload) {
        counts.messagesEchoed++;
        continue;
      }
      if (reply === undefined && ws.readyState !== ws.OPEN) {
        // Dropped with its connection: expected only if the backend was killed.
        note(recentlyKilled(backend, openedAt) ? expected : errors, 'message-dropped-with-its-connection');
      } else if (reply === undefined) note(errors, 'message-lost');
      else note(errors, 'message-corrupted');
      break;
    }
    if (ws.readyState === ws.OPEN) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5000);
        ws.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        ws.close(1000);
      });
      counts.wsClosedClean++;
    } else if (closedUnexpectedly) {
      note(recentlyKilled(backend, openedAt) ? expected : errors, 'ws-closed-by-proxy');
    }
  };

  const loop = async (body: () => Promise<void>): Promise<void> => {
    while (!stopping && Date.now() < until) await body();
  };

  const shortConnect = async (): Promise<void> => {
    try {
      const { ws } = await openClient(`${url}/short`, {}, 5000);
      ws.close(1000);
      await new Promise((r) => ws.once('close', r));
      counts.shortConnects++;
    } catch {
      note(anyRecentlyKilled() ? expected : errors, 'short-connect-failed');
    }
  };

  const abortCycle = async (w: number): Promise<void> => {
    const kind: CycleKind = CYCLE_KINDS[rng.int(CYCLE_KINDS.length)]!;
    await cycle(proxy.port, kind, `127.0.${10 + (w % 4)}.${1 + rng.int(250)}`);
    counts.aborts++;
  };

  const httpRequest = async (): Promise<void> => {
    try {
      const res = await fetch(`${httpUrl}/soak?n=${rng.int(1e6)}`, { signal: AbortSignal.timeout(10_000) });
      const body = (await res.json()) as { backend?: string };
      if (res.status === 200 && body.backend) counts.httpOk++;
      else note(anyRecentlyKilled() ? expected : errors, `http-${res.status}`);
    } catch {
      note(anyRecentlyKilled() ? expected : errors, 'http-failed');
    }
  };

  /** Every `restartEvery` s (+-50%) one backend dies (all its sockets reset), back 1-3 s later. */
  const restarts = async (): Promise<void> => {
    if (restartEvery <= 0) return;
    const lastRestart = until - Math.min(10_000, durationMs / 4);
    while (!stopping && Date.now() < lastRestart) {
      await new Promise((r) => setTimeout(r, restartEvery * (500 + rng.int(1000))));
      if (stopping || Date.now() >= lastRestart) return;
      const i = rng.int(backends.length);
      const victim = backends[i]!;
      killedAt.set(victim.id, Date.now());
      await victim.kill();
      await new Promise((r) => setTimeout(r, 1000 + rng.int(2000)));
      await victim.restart();
      killedAt.set(victim.id, Date.now());
      counts.restarts++;
    }
  };

  const sample = async (): Promise<void> => {
    const stats = await proxy.stats(true);
    samples.push({ t: Date.now() - started, stats });
    log(
      `${String(Math.round((Date.now() - started) / 1000)).padStart(5)} s  rss ${mib(stats.rss).padStart(10)}  heap ${mib(stats.heapUsed).padStart(9)}  fds ${String(stats.fds).padStart(5)}  live ${String(stats.active).padStart(4)}  echoed ${counts.messagesEchoed}`,
    );
  };

  const sampleEvery = options.sampleEvery ?? Math.max(5000, Math.min(30_000, durationMs / 20));
  let sampling = Promise.resolve();
  const sampler = setInterval(() => {
    sampling = sampling.then(sample, () => {});
  }, sampleEvery);
  let crashed: string | undefined;
  const exited = new Promise<string>((resolve) =>
    proxy.child.once('exit', (code, signal) => resolve(`proxy exited (${code ?? signal})`)),
  );

  await sample();
  const load = Promise.all([
    ...Array.from({ length: echoClients }, (_, w) => loop(() => echoSession(w))),
    loop(shortConnect),
    loop(shortConnect),
    ...Array.from({ length: 4 }, (_, w) => loop(() => abortCycle(w))),
    loop(httpRequest),
    loop(httpRequest),
    restarts(),
  ]);
  const outcome = await Promise.race([load.then(() => undefined), exited]);
  stopping = true;
  clearInterval(sampler);
  await sampling;

  const leaks: string[] = [];
  let stuck: LiveConnection[] = [];
  if (outcome !== undefined) crashed = outcome;
  else {
    // Let the last connections close, then compare with the baseline: fds and counters with the
    // start, heap with the first sample after a quarter of the run (pools and caches grown).
    const startFds = samples[0]!.stats.fds;
    const deadline = Date.now() + 15_000;
    let end = await proxy.stats(true);
    while (
      (end.active > 0 || end.backends.some((b) => b.active > 0) || end.fds > startFds + 2) &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 250));
      end = await proxy.stats(true);
    }
    const baseline = samples.find((s) => s.t >= durationMs / 4) ?? samples[0]!;
    samples.push({ t: Date.now() - started, stats: end });
    counts.proxyConnections = end.total;
    if (end.active !== 0) leaks.push(`${end.active} connection(s) still counted live`);
    for (const b of end.backends) if (b.active !== 0) leaks.push(`backend ${b.id} still counts ${b.active}`);
    if (end.fds > startFds + 2) leaks.push(`fds ${startFds} -> ${end.fds}`);
    if (end.heapUsed - baseline.stats.heapUsed > maxHeapGrowth) {
      leaks.push(`heap ${mib(baseline.stats.heapUsed)} -> ${mib(end.heapUsed)}`);
    }
    if (end.active > 0) stuck = await proxy.live();
  }
  await proxy.close().catch(() => {});
  await Promise.all(backends.map((b) => b.close()));
  const ok = crashed === undefined && Object.keys(errors).length === 0 && leaks.length === 0;
  return { counts, expected, errors, samples, leaks, stuck, crashed, ok };
}

/** The printed summary of a run. */
export function describeSoak(report: SoakReport, durationMs: number): string {
  const { counts } = report;
  const lines = [
    'summary',
    `  duration           ${(durationMs / 60_000).toFixed(1)} min`,
    `  websockets         ${counts.wsOpened} opened, ${counts.wsClosedClean} closed cleanly`,
    `  messages           ${counts.messagesSent} sent, ${counts.messagesEchoed} echoed intact`,
    `  short connects     ${counts.shortConnects}`,
    `  connect/aborts     ${counts.aborts}`,
    `  http requests      ${counts.httpOk} ok`,
    `  backend restarts   ${counts.restarts}`,
    `  proxy connections  ${counts.proxyConnections} in all`,
    `  expected failures  ${JSON.stringify(report.expected)} (connections on a killed backend)`,
    `  errors             ${JSON.stringify(report.errors)}`,
    `  rss (MiB)          ${report.samples.map((s) => (s.stats.rss / 1048576).toFixed(0)).join(' ')}`,
    `  heap (MiB)         ${report.samples.map((s) => (s.stats.heapUsed / 1048576).toFixed(1)).join(' ')}`,
    `  fds                ${report.samples.map((s) => s.stats.fds).join(' ')}`,
    `  leaks              ${report.leaks.length > 0 ? report.leaks.join('; ') : 'none'}`,
  ];
  if (report.stuck.length > 0) lines.push(`  still live         ${JSON.stringify(report.stuck.slice(0, 5))}`);
  if (report.crashed) lines.push(`  ${report.crashed}`);
  return lines.join('\n');
}
