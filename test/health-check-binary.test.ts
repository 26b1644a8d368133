import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import {
  type EchoBackend,
  type OpenedClient,
  type RunningWslb,
  assertNoLeakedHandles,
  closeAll,
  openClients,
  roundTrip,
  execWslb,
  runWslb,
  startEchoBackends,
  waitFor,
  writeTempConfig,
} from '@wslb/testing';
import WebSocket from 'ws';
import { backendAction, getStatus, sample, scrape, stateOf } from './helpers/admin.js';

type Cleanup = () => Promise<unknown> | unknown;
let cleanup: Cleanup[] = [];

afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
  await assertNoLeakedHandles();
});

interface Started {
  backends: EchoBackend[];
  wslb: RunningWslb;
  admin: number;
  clients: OpenedClient[];
}

/** Three echo backends behind the binary with the given health-check options and an admin listener. */
async function start(healthOptions: Record<string, unknown> | undefined): Promise<Started> {
  const backends = await startEchoBackends(3);
  const started: Started = { backends, wslb: undefined as unknown as RunningWslb, admin: 0, clients: [] };
  cleanup.push(() => Promise.all(started.backends.map((b) => b.close())));
  const plugins: unknown[] = ['round-robin'];
  if (healthOptions) plugins.push({ use: 'health-check', options: healthOptions });
  started.wslb = await runWslb({
    listen: { host: '127.0.0.1', port: 0 },
    backends: backends.map((b) => ({ id: b.id, url: b.url })),
    plugins,
    admin: { host: '127.0.0.1', port: 0 },
    log: { level: 'info', access: false },
  });
  cleanup.push(async () => {
    await closeAll(started.clients);
    assert.equal(await started.wslb.stop('SIGTERM'), 0);
  });
  const line = await started.wslb.waitForLog((l) => l.msg === 'admin listening');
  started.admin = line.port as number;
  return started;
}

async function open(s: Started, count: number): Promise<Record<string, number>> {
  const { clients, perBackend } = await openClients(s.wslb.url, count);
  s.clients.push(...clients);
  return perBackend;
}

/** Every client still open on a backend other than `except` echoes a message. */
async function allEcho(s: Started, except: string): Promise<number> {
  let n = 0;
  for (const c of s.clients) {
    if (c.backend === except) continue;
    assert.equal(c.ws.readyState, WebSocket.OPEN, `a socket on ${c.backend} was dropped`);
    assert.equal((await roundTrip(c.ws, `ping ${n}`)).data.toString(), `ping ${n}`);
    n++;
  }
  return n;
}

/**
 * Kill b2: /status shows it down within `downWithinMs`, new sockets avoid it, every socket on
 * b1 and b3 keeps working; restart it: up within `upWithinMs`, and it takes new sockets again.
 */
async function killAndRestart(
  s: Started,
  {
    downWithinMs,
    upWithinMs,
    detect,
  }: { downWithinMs: number; upWithinMs: number; detect?: () => Promise<number> },
): Promise<void> {
  await waitFor(async () => (await getStatus(s.admin)).backends.every((b) => b.state === 'up'), {
    message: 'all backends up',
  });
  assert.deepEqual(await open(s, 6), { b1: 2, b2: 2, b3: 2 });

  await s.backends[1]!.kill();
  const killedAt = Date.now();
  // Sockets opened to make passive checks see the dead backend (they land on b1 and b3).
  const detectors = (await detect?.()) ?? 0;
  await waitFor(async () => (await stateOf(s.admin, 'b2')) === 'down', {
    timeoutMs: downWithinMs,
    intervalMs: 50,
    message: `b2 down within ${downWithinMs} ms`,
  });
  const downAfter = Date.now() - killedAt;
  const line = await s.wslb.waitForLog((l) => l.msg === 'backend state changed' && l.backend === 'b2');
  assert.equal(line.state, 'down');
  assert.match(String(line.reason), /health-check/);

  const totalWhenDown = (await getStatus(s.admin)).backends.find((b) => b.id === 'b2')!.total;
  const during = await open(s, 6);
  assert.equal(during.b2, undefined, 'no new socket reaches the down backend');
  assert.equal((during.b1 ?? 0) + (during.b3 ?? 0), 6);
  assert.equal((await getStatus(s.admin)).backends.find((b) => b.id === 'b2')!.total, totalWhenDown);
  assert.equal(await allEcho(s, 'b2'), 10 + detectors, 'the old and new sockets on b1 and b3 all echo');

  await s.backends[1]!.restart();
  const restartedAt = Date.now();
  await waitFor(async () => (await stateOf(s.admin, 'b2')) === 'up', {
    timeoutMs: upWithinMs,
    intervalMs: 50,
    message: `b2 up within ${upWithinMs} ms`,
  });
  const upAfter = Date.now() - restartedAt;
  const after = await open(s, 6);
  assert.ok((after.b2 ?? 0) >= 1, `b2 takes traffic again: ${JSON.stringify(after)}`);
  assert.equal(await allEcho(s, 'b2'), 10 + detectors + 6 - (after.b2 ?? 0));
  for (const c of s.clients.filter((c) => c.backend === 'b2' && c.ws.readyState === WebSocket.OPEN)) {
    assert.equal((await roundTrip(c.ws, 'back')).data.toString(), 'back');
  }
  // For the record in the test output.
  console.log(`  b2 down ${downAfter} ms after the kill, up ${upAfter} ms after the restart`);
}

const active = { interval: 500, timeout: 300, rise: 2, fall: 2 };
// fall*interval + timeout + 1 s; rise checks after the restart, plus one interval of phase.
const DOWN_WITHIN = active.fall * active.interval + active.timeout + 1000;
const UP_WITHIN = active.rise * active.interval + active.interval + active.timeout + 1000;

describe('health checks through the wslb binary', { timeout: 120_000 }, () => {
  it('type ws: a killed backend goes down and comes back', async () => {
    const s = await start({ type: 'ws', path: '/', ...active });
    await killAndRestart(s, { downWithinMs: DOWN_WITHIN, upWithinMs: UP_WITHIN });
  });

  it('type tcp: a killed backend goes down and comes back', async () => {
    const s = await start({ type: 'tcp', ...active });
    await killAndRestart(s, { downWithinMs: DOWN_WITHIN, upWithinMs: UP_WITHIN });
  });

  it('type http: a killed backend goes down and comes back', async () => {
    const s = await start({ type: 'http', path: '/healthz', expect: ['200-299'], ...active });
    await killAndRestart(s, { downWithinMs: DOWN_WITHIN, upWithinMs: UP_WITHIN });
    // The checks asked for the configured path.
    assert.ok(
      s.backends[1]!.seen.some((r) => r.kind === 'http' && r.url === '/healthz'),
      "s.backends[1]!.seen.some((r) => r.kind === 'http' && r.url === '/healthz')",
    );
  });

  it('passive only: a failed dial takes a killed backend out; it is back after failTimeout', async () => {
    const failTimeout = 1500;
    const s = await start({ passive: { maxFails: 1, failTimeout } });
    await killAndRestart(s, {
      // The sockets opened by `detect` dial b2 once, fail over to b1/b3, and mark b2 down.
      detect: async () => {
        const opened = await open(s, 3);
        assert.equal(opened.b2, undefined);
        return 3;
      },
      downWithinMs: 1000,
      upWithinMs: failTimeout + 1000,
    });
  });
});

describe('admin API through the wslb binary', { timeout: 60_000 }, () => {
  it('drain and enable change where new sockets go and drop none', async () => {
    const s = await start({ type: 'ws', interval: 500, timeout: 300 });
    assert.deepEqual(await open(s, 6), { b1: 2, b2: 2, b3: 2 });

    const drained = await backendAction(s.admin, 'b1', 'drain');
    assert.equal(drained.status, 200);
    assert.equal(JSON.parse(drained.body).state, 'draining');
    const status = await getStatus(s.admin);
    const b1 = status.backends.find((b) => b.id === 'b1')!;
    assert.deepEqual([b1.state, b1.active], ['draining', 2], 'live sockets stay on the drained backend');

    assert.deepEqual(await open(s, 6), { b2: 3, b3: 3 });
    // Health checks keep passing on b1; they must not clear the drain.
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(await stateOf(s.admin, 'b1'), 'draining');
    assert.equal(await allEcho(s, ''), 12, 'every socket, those on b1 included, still echoes');

    const enabled = await backendAction(s.admin, 'b1', 'enable');
    assert.equal(enabled.status, 200);
    assert.equal(JSON.parse(enabled.body).state, 'up');
    const after = await open(s, 6);
    assert.ok((after.b1 ?? 0) >= 2, `b1 takes new sockets again: ${JSON.stringify(after)}`);
    assert.equal(await allEcho(s, ''), 18);

    assert.equal((await backendAction(s.admin, 'nope', 'drain')).status, 404);
    const log = await s.wslb.waitForLog((l) => l.msg === 'backend state changed' && l.state === 'draining');
    assert.match(String(log.reason), /admin drain/);
  });

  it('/metrics parses as Prometheus text and counts what clients did', async () => {
    const s = await start({ type: 'ws', interval: 200, timeout: 300 });
    const before = await open(s, 6);
    assert.deepEqual(before, { b1: 2, b2: 2, b3: 2 });
    const message = 'x'.repeat(1000);
    for (const c of s.clients) assert.equal((await roundTrip(c.ws, message)).data.toString(), message);
    // Two sockets end: their bytes move from live tunnels to closed counters.
    const ended = s.clients.splice(0, 2);
    await closeAll(ended);
    await waitFor(async () => (await getStatus(s.admin)).connections.active === 4, { message: '4 live' });
    await backendAction(s.admin, 'b3', 'drain');
    await waitFor(async () => (await getStatus(s.admin)).backends.every((b) => b.lastCheck !== null), {
      message: 'every backend checked',
    });

    const m = await scrape(s.admin);
    const names = new Set(m.map((f) => f.name));
    for (const name of [
      'wslb_connections_active',
      'wslb_connections_total',
      'wslb_backend_up',
      'wslb_bytes_total',
      'wslb_handshake_duration_seconds',
      'wslb_health_checks_total',
    ]) {
      assert.ok(names.has(name), `${name} is exported`);
    }
    const live: Record<string, number> = {};
    for (const c of s.clients) live[c.backend!] = (live[c.backend!] ?? 0) + 1;
    for (const id of ['b1', 'b2', 'b3']) {
      assert.equal(sample(m, 'wslb_connections_active', { backend: id }), live[id] ?? 0, `active on ${id}`);
      assert.equal(sample(m, 'wslb_connections_total', { backend: id, kind: 'ws' }), 2, `total on ${id}`);
      // Each socket sent one 1000-byte message plus its handshake, and got the echo and the 101.
      const sent = sample(m, 'wslb_bytes_total', { backend: id, direction: 'client_to_backend' })!;
      const received = sample(m, 'wslb_bytes_total', { backend: id, direction: 'backend_to_client' })!;
      assert.ok(sent > 2 * 1000 && sent < 2 * 1000 + 2 * 1000, `client_to_backend of ${id}: ${sent}`);
      assert.ok(
        received > 2 * 1000 && received < 2 * 1000 + 2 * 1000,
        `backend_to_client of ${id}: ${received}`,
      );
      const passed = sample(m, 'wslb_health_checks_total', { backend: id, result: 'success' });
      assert.ok((passed ?? 0) >= 1, `passed checks of ${id}: ${passed}`);
    }
    assert.equal(sample(m, 'wslb_backend_up', { backend: 'b1' }), 1);
    assert.equal(sample(m, 'wslb_backend_up', { backend: 'b3' }), 0, 'a drained backend is not up');
    const handshakes = m.find((f) => f.name === 'wslb_handshake_duration_seconds')!;
    assert.equal(handshakes.type, 'HISTOGRAM');
    const series = handshakes.metrics[0]!;
    assert.ok('buckets' in series, "'buckets' in series");
    assert.equal(Number(series.count), 6, 'one handshake per opened socket');
    assert.equal(Number(series.buckets['+Inf']), 6);
  });
});

describe('health-check config through the wslb binary', { timeout: 60_000 }, () => {
  it('--check reports bad health-check options with their JSON path; --print-schema has them', async () => {
    const { dir, file } = writeTempConfig({
      backends: [{ url: 'ws://127.0.0.1:9001' }],
      plugins: [{ use: 'health-check', options: { type: 'udp', fall: 0, expect: '2xx' } }],
    });
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const checked = await execWslb(['--check', '--config', file]);
    assert.equal(checked.code, 2);
    assert.match(checked.stderr, /\/plugins\/0\/options\/type: must be one of "tcp", "http", "ws"/);
    assert.match(checked.stderr, /\/plugins\/0\/options\/fall/);
    assert.match(checked.stderr, /\/plugins\/0\/options\/expect/);
    // A range whose ends are swapped passes the schema's pattern: the plugin's own check names it.
    writeFileSync(
      file,
      JSON.stringify({
        backends: [{ url: 'ws://127.0.0.1:9001' }],
        plugins: [{ use: 'health-check', options: { type: 'http', expect: [204, '399-200'] } }],
      }),
    );
    for (const args of [
      ['--check', '--config', file],
      ['--config', file],
    ]) {
      const swapped = await execWslb(args);
      assert.equal(swapped.code, 2, `wslb ${args.join(' ')}: ${swapped.stderr}`);
      assert.match(swapped.stderr, /\/plugins\/0\/options\/expect: invalid range "399-200"/);
    }
    const printed = await execWslb(['--print-schema']);
    assert.equal(printed.code, 0);
    assert.match(printed.stdout, /consecutive failures to go down/);
  });

  it('SIGHUP applies new check options without a restart', async () => {
    const s = await start({ type: 'http', path: '/before', interval: 100, timeout: 300 });
    await waitFor(() => s.backends.every((b) => b.seen.some((r) => r.url === '/before')), {
      message: 'checks on /before',
    });
    s.wslb.writeConfig({
      listen: { host: '127.0.0.1', port: 0 },
      backends: s.backends.map((b) => ({ id: b.id, url: b.url })),
      plugins: [
        'round-robin',
        { use: 'health-check', options: { type: 'ws', path: '/after', interval: 100 } },
      ],
      admin: { host: '127.0.0.1', port: 0 },
      log: { level: 'info', access: false },
    });
    s.wslb.child.kill('SIGHUP');
    await s.wslb.waitForLog((l) => l.msg === 'reloaded');
    await waitFor(() => s.backends.every((b) => b.seen.some((r) => r.kind === 'ws' && r.url === '/after')), {
      message: 'ws checks on /after',
    });
    const before = s.backends[0]!.seen.filter((r) => r.url === '/before').length;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(s.backends[0]!.seen.filter((r) => r.url === '/before').length, before, 'old checks stopped');
  });
});
