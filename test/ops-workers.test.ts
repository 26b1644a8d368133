import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import {
  createCleanup,
  assertNoLeakedHandles,
  closeAll,
  openClients,
  roundTrip,
  type RunningWslb,
  runWslb,
  startEchoBackend,
  startEchoBackends,
  waitFor,
} from '@wslb/testing';

interface ClusterStatus {
  backends: Array<{ id: string; state: string; active: number; total: number; failures: number }>;
  connections: { active: number; total: number };
}

/** Waits for both workers and the primary's admin listener; `status()` reads its /status. */
async function clusterAdmin(wslb: RunningWslb): Promise<{ admin: string; status(): Promise<ClusterStatus> }> {
  await waitFor(() => wslb.logs.filter((l) => l.msg === 'worker ready').length >= 2, { timeoutMs: 15_000 });
  const adminLine = await wslb.waitForLog((l) => l.msg === 'admin listening');
  const admin = `http://127.0.0.1:${adminLine.port as number}`;
  return { admin, status: async () => (await (await fetch(`${admin}/status`)).json()) as ClusterStatus };
}

describe('workers', { timeout: 120_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('serves from 2 worker processes, survives a killed worker and drains on SIGTERM', async () => {
    const backends = await startEchoBackends(2);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      workers: 2,
      timeouts: { drain: 1000 },
    });
    cleanup.defer(() => wslb.stop('SIGKILL'));
    const ready = async (n: number) =>
      waitFor(
        () => {
          const pids = new Set(
            wslb.logs.filter((l) => l.msg === 'worker ready').map((l) => l.worker as number),
          );
          return pids.size >= n ? [...pids] : undefined;
        },
        { timeoutMs: 15_000, message: `${n} workers ready` },
      );
    const [w1, w2] = await ready(2);
    assert.notEqual(w1, w2);
    assert.notEqual(w1, wslb.child.pid);

    // Connections are spread over both workers: the access lines name each worker's pid.
    const first = await openClients(wslb.url, 20);
    await closeAll(first.clients);
    const servedBy = await waitFor(
      () => {
        const pids = new Set(wslb.logs.filter((l) => l.msg === 'access').map((l) => l.pid as number));
        return pids.size >= 2 ? pids : undefined;
      },
      { message: 'access lines from two workers' },
    );
    assert.deepEqual([...servedBy].sort(), [w1, w2].sort());

    // Kill one worker: sockets on the other keep working and a new worker takes its place.
    const live = await openClients(wslb.url, 10);
    const victim = w1!;
    process.kill(victim, 'SIGKILL');
    await wslb.waitForLog((l) => l.msg === 'worker exited' && l.worker === victim);
    await new Promise((r) => setTimeout(r, 300));
    const survivors = live.clients.filter((c) => c.ws.readyState === c.ws.OPEN);
    assert.ok(survivors.length > 0 && survivors.length < 10, `${survivors.length} sockets survived`);
    for (const c of survivors) assert.equal((await roundTrip(c.ws, 'alive')).data.toString(), 'alive');
    const pidsNow = await ready(3);
    assert.equal(pidsNow.length, 3);
    const again = await openClients(wslb.url, 4);
    for (const c of again.clients)
      assert.equal((await roundTrip(c.ws, 'new worker')).data.toString(), 'new worker');
    await closeAll(again.clients);

    // SIGTERM: workers drain the survivors and everything exits 0.
    const code = await wslb.stop('SIGTERM');
    assert.equal(code, 0);
    await closeAll(survivors);
  });
});

describe('workers share one control plane', { timeout: 120_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('health checks in the primary take a dead backend out of every worker; /status sums the workers', async () => {
    const backends = await startEchoBackends(2);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      plugins: [
        { use: 'health-check', options: { type: 'ws', interval: 300, timeout: 300, rise: 1, fall: 1 } },
      ],
      admin: { host: '127.0.0.1', port: 0 },
      workers: 2,
      timeouts: { drain: 500 },
    });
    cleanup.defer(() => wslb.stop());
    const { admin, status } = await clusterAdmin(wslb);

    const first = await openClients(wslb.url, 8);
    assert.deepEqual(Object.keys(first.perBackend).sort(), ['b1', 'b2']);
    // The primary's status counts the sockets of both workers.
    await waitFor(async () => (await status()).connections.active === 8, { message: '8 live in /status' });

    await backends[1]!.kill();
    await waitFor(async () => (await status()).backends.find((b) => b.id === 'b2')?.state === 'down', {
      timeoutMs: 5000,
      message: 'b2 down in /status',
    });
    // Every worker got the state: 12 new sockets, whichever worker takes them, all go to b1.
    await new Promise((r) => setTimeout(r, 200));
    const after = await openClients(wslb.url, 12);
    assert.deepEqual(after.perBackend, { b1: 12 });
    const pids = new Set(wslb.logs.filter((l) => l.msg === 'worker ready').map((l) => l.worker));
    assert.equal(pids.size, 2);
    await closeAll([...first.clients, ...after.clients]);

    // /metrics joins the primary's health view with the traffic of both workers.
    const text = await (await fetch(`${admin}/metrics`)).text();
    const families = parsePrometheusTextFormat(text) as Array<{
      name: string;
      metrics: Array<{ labels?: Record<string, string>; value?: string }>;
    }>;
    const family = (name: string) => families.find((f) => f.name === name)!;
    const opened = family('wslb_connections_total').metrics.reduce((n, m) => n + Number(m.value), 0);
    assert.equal(opened, 20);
    assert.equal(family('wslb_backend_up').metrics.find((m) => m.labels?.backend === 'b2')!.value, '0');
    assert.ok(
      family('wslb_health_checks_total').metrics.some((m) => m.labels?.result === 'failure'),
      "family('wslb_health_checks_total').metrics.some((m) => m.labels?.result === 'failure')",
    );

    // A worker that dies takes its live connections along, not the totals /status counted.
    assert.equal((await status()).connections.total, 20, 'connections ever made');
    process.kill([...pids][0] as number, 'SIGKILL');
    await wslb.waitForLog((l) => l.msg === 'worker exited');
    await waitFor(() => wslb.logs.filter((l) => l.msg === 'worker ready').length >= 3, { timeoutMs: 15_000 });
    await new Promise((r) => setTimeout(r, 1500));
    const afterCrash = await status();
    assert.equal(afterCrash.connections.total, 20, 'connections ever made, across a worker crash');
    assert.equal(
      afterCrash.backends.reduce((n, b) => n + b.total, 0),
      20,
      'per-backend totals across a worker crash',
    );
  });

  it("passive checks count every worker's failed dials, and a worker's success resets them", async () => {
    // b1 takes everything while it works; the backup b2 takes the connections b1 fails.
    const [b1, b2] = await startEchoBackends(2);
    const primary = b1!;
    cleanup.defer(() => Promise.all([primary.close(), b2!.close()]));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [
        { id: 'b1', url: b1!.url },
        { id: 'b2', url: b2!.url, backup: true },
      ],
      plugins: [{ use: 'health-check', options: { passive: { maxFails: 2, failTimeout: 30_000 } } }],
      admin: { host: '127.0.0.1', port: 0 },
      workers: 2,
      timeouts: { drain: 500 },
    });
    cleanup.defer(() => wslb.stop());
    const { status } = await clusterAdmin(wslb);
    const stateOfB1 = async () => (await status()).backends.find((b) => b.id === 'b1')!;
    const oneSocketGoesTo = async (expected: string) => {
      const opened = await openClients(wslb.url, 1);
      assert.deepEqual(opened.perBackend, { [expected]: 1 });
      await closeAll(opened.clients);
    };

    await primary.kill();
    await oneSocketGoesTo('b2'); // failure 1 of b1, whichever worker took it
    await waitFor(async () => (await stateOfB1()).failures === 1, { message: 'the first failure reported' });
    await primary.restart();
    await oneSocketGoesTo('b1'); // a success: the count starts over
    await primary.kill();
    await oneSocketGoesTo('b2'); // failure 1 again, not 2
    await waitFor(async () => (await stateOfB1()).failures >= 2, { message: 'the second failure reported' });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await stateOfB1()).state, 'up', 'a success between two failures resets the count');

    await oneSocketGoesTo('b2'); // failure 2 in a row: out of rotation
    await waitFor(async () => (await stateOfB1()).state === 'down', { message: 'b1 taken out passively' });
  });

  it('a backend a reload adds gets its state from the primary in every worker; /healthz says draining', async () => {
    const [a, c] = await Promise.all([
      startEchoBackend({ id: 'a' }),
      startEchoBackend({ id: 'c', upgradeStatus: 503 }),
    ]);
    cleanup.defer(() => Promise.all([a.close(), c.close()]));
    const healthCheck = {
      use: 'health-check',
      options: { type: 'ws', interval: 200, timeout: 300, rise: 1, fall: 1, defaultState: 'down' },
    };
    const config = {
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'a', url: a.url }],
      plugins: [healthCheck],
      admin: { host: '127.0.0.1', port: 0 },
      workers: 2,
      timeouts: { drain: 3000 },
    };
    const wslb = await runWslb(config);
    cleanup.defer(() => wslb.stop());
    const { admin, status } = await clusterAdmin(wslb);
    const states = async () => Object.fromEntries((await status()).backends.map((b) => [b.id, b.state]));
    await waitFor(async () => (await states()).a === 'up', { message: 'a up after its first check' });

    // c fails every check: the primary keeps it down, and the workers must agree.
    wslb.writeConfig({
      ...config,
      listen: { ...config.listen, port: wslb.port },
      backends: [...config.backends, { id: 'c', url: c.url }],
    });
    wslb.child.kill('SIGHUP');
    // Each worker logs the state it takes from the primary once its own reload is done.
    await waitFor(
      () =>
        wslb.logs.filter(
          (l) => l.msg === 'backend state changed' && l.backend === 'c' && l.reason === 'state after reload',
        ).length >= 2,
      { message: 'both workers took c down from the primary' },
    );
    assert.deepEqual(await states(), { a: 'up', c: 'down' });
    const after = await openClients(wslb.url, 12);
    assert.deepEqual(after.perBackend, { a: 12 }, 'no worker sends traffic to the down backend');

    // SIGTERM with live tunnels, to every process at once as systemd or a terminal sends it: the
    // workers also get the primary's copy, and still drain; /healthz says so meanwhile.
    assert.equal((await fetch(`${admin}/healthz`)).status, 200);
    const workerPids = wslb.logs.filter((l) => l.msg === 'worker ready').map((l) => l.worker as number);
    wslb.child.kill('SIGTERM');
    for (const pid of workerPids) process.kill(pid, 'SIGTERM');
    await waitFor(async () => (await fetch(`${admin}/healthz`)).status === 503, {
      timeoutMs: 2000,
      message: '/healthz 503 while the workers drain',
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(
      after.clients.every((c) => c.ws.readyState === c.ws.OPEN),
      'the tunnels live on through the drain',
    );
    await closeAll(after.clients);
    assert.equal(await wslb.exited, 0);
  });
});
