import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import {
  assertNoLeakedHandles,
  closeAll,
  openClients,
  roundTrip,
  runWslb,
  startEchoBackends,
  waitFor,
} from '@wslb/testing';

describe('workers', { timeout: 120_000 }, () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
    await assertNoLeakedHandles();
  });

  it('serves from 2 worker processes, survives a killed worker and drains on SIGTERM', async () => {
    const backends = await startEchoBackends(2);
    cleanups.push(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      workers: 2,
      timeouts: { drain: 1000 },
    });
    cleanups.push(() => wslb.stop('SIGKILL'));
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
