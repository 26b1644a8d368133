import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import {
  createCleanup,
  type OpenedClient,
  assertNoLeakedHandles,
  closeAll,
  execWslb,
  openClient,
  openClients,
  runWslb,
  startEchoBackends,
  waitFor,
  writeTempConfig,
} from '@wslb/testing';
import { rmSync } from 'node:fs';
import { httpGet } from './helpers/http.js';

describe('round-robin through the wslb binary', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('interleaves weights 5,1,1 as a a b a c a a, over WebSocket and HTTP', async () => {
    const backends = await startEchoBackends(3);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const [a, b, c] = backends as [(typeof backends)[0], (typeof backends)[0], (typeof backends)[0]];
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [
        { id: a.id, url: a.url, weight: 5 },
        { id: b.id, url: b.url, weight: 1 },
        { id: c.id, url: c.url, weight: 1 },
      ],
      plugins: ['round-robin'],
      log: { access: false },
    });
    cleanup.defer(() => wslb.stop());
    const { clients } = await openClients(wslb.url, 14);
    const cycle = ['b1', 'b1', 'b2', 'b1', 'b3', 'b1', 'b1'];
    assert.deepEqual(
      clients.map((cl) => cl.backend),
      [...cycle, ...cycle],
    );
    await closeAll(clients);
    const served: string[] = [];
    for (let i = 0; i < 7; i++) served.push((await httpGet(`${wslb.httpUrl}/page`)).json().backend);
    assert.deepEqual(served, cycle);
  });

  it('fills primaries up to maxConnections, then uses the backup, and goes back when a slot frees', async () => {
    const backends = await startEchoBackends(3);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [
        { id: 'p1', url: backends[0]!.url, maxConnections: 2 },
        { id: 'p2', url: backends[1]!.url, maxConnections: 2 },
        { id: 'spare', url: backends[2]!.url, backup: true },
      ],
      plugins: ['round-robin'],
      log: { access: false },
    });
    cleanup.defer(() => wslb.stop());
    const held: OpenedClient[] = [];
    cleanup.defer(() => closeAll(held));
    for (let i = 0; i < 6; i++) held.push(await openClient(wslb.url));
    // Echo backends name themselves b1..b3 whatever id the config gives them.
    assert.deepEqual(
      held.map((cl) => cl.backend),
      ['b1', 'b2', 'b1', 'b2', 'b3', 'b3'],
    );
    const [first] = held.splice(0, 1);
    await closeAll([first!]);
    await waitFor(() => backends[0]!.clients.size === 1, { message: 'p1 has a free slot' });
    const next = await openClient(wslb.url);
    held.push(next);
    assert.equal(next.backend, 'b1');
  });

  it('rejects options it does not have, naming the JSON path (exit 2)', async () => {
    const { dir, file } = writeTempConfig({
      backends: [{ url: 'ws://127.0.0.1:9001' }],
      plugins: [{ use: 'round-robin', options: { weights: [1, 2] } }],
    });
    cleanup.defer(async () => rmSync(dir, { recursive: true, force: true }));
    const result = await execWslb(['--check', '--config', file]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /\/plugins\/0\/options: unknown property "weights"/);
  });
});
