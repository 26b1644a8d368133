import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import {
  createCleanup,
  type EchoBackend,
  type OpenedClient,
  type RunningWslb,
  assertNoLeakedHandles,
  closeAll,
  execWslb,
  openClients,
  roundTrip,
  runWslb,
  startEchoBackends,
  writeTempConfig,
} from '@wslb/testing';
import { httpGet } from './helpers/http.js';

describe('least-connections through the wslb binary', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  /**
   * Starts the binary with b1 alone and opens 50 long-lived sockets on it, then reloads (SIGHUP)
   * to three backends and `plugin`: b1 keeps its 50 tunnels and its count.
   */
  async function oneBackendHolding50(plugin: string | object): Promise<{
    wslb: RunningWslb;
    backends: EchoBackend[];
    held: OpenedClient[];
  }> {
    const backends = await startEchoBackends(3);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const all = backends.map((b) => ({ id: b.id, url: b.url }));
    const config = { listen: { host: '127.0.0.1', port: 0 }, log: { access: false } };
    const wslb = await runWslb({ ...config, backends: all.slice(0, 1), plugins: [plugin] });
    cleanup.defer(() => wslb.stop());
    const { clients: held, perBackend } = await openClients(wslb.url, 50);
    cleanup.defer(() => closeAll(held));
    assert.deepEqual(perBackend, { b1: 50 });
    // The same `listen` (port 0 included), so that the reload keeps the running listener.
    wslb.writeConfig({ ...config, backends: all, plugins: [plugin] });
    wslb.child.kill('SIGHUP');
    await wslb.waitForLog((l) => l.msg === 'reloaded');
    return { wslb, backends, held };
  }

  it('sends the next 50 sockets to the others while one backend holds 50 WebSockets', async () => {
    const { wslb, backends, held } = await oneBackendHolding50('least-connections');
    const { clients, perBackend } = await openClients(wslb.url, 50);
    cleanup.defer(() => closeAll(clients));
    assert.deepEqual(perBackend, { b2: 25, b3: 25 });
    // The 50 first tunnels are alive and still counted: they carry traffic.
    assert.equal(backends[0]!.clients.size, 50);
    assert.equal((await roundTrip(held[49]!.ws, 'still here')).data.toString(), 'still here');
    // Now level (50/25/25 -> the next 50 fill b2 and b3 to 50 each).
    const more = await openClients(wslb.url, 50);
    cleanup.defer(() => closeAll(more.clients));
    assert.deepEqual(more.perBackend, { b2: 25, b3: 25 });
  });

  it('with choices: 2 never picks the loaded backend, which loses every draw', async () => {
    const { wslb } = await oneBackendHolding50({ use: 'least-connections', options: { choices: 2 } });
    const { clients, perBackend } = await openClients(wslb.url, 30);
    cleanup.defer(() => closeAll(clients));
    assert.equal(perBackend.b1, undefined);
    assert.equal((perBackend.b2 ?? 0) + (perBackend.b3 ?? 0), 30);
  });

  it('rotates short HTTP requests evenly (equal loads take turns)', async () => {
    const backends = await startEchoBackends(3);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      plugins: ['least-connections'],
      log: { access: false },
    });
    cleanup.defer(() => wslb.stop());
    const served: string[] = [];
    for (let i = 0; i < 9; i++) served.push((await httpGet(`${wslb.httpUrl}/x`)).json().backend);
    assert.deepEqual(served, ['b1', 'b2', 'b3', 'b1', 'b2', 'b3', 'b1', 'b2', 'b3']);
  });

  it('counts weight: a weight-3 backend takes 3 sockets for each one of a weight-1', async () => {
    const backends = await startEchoBackends(2);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [
        { id: 'heavy', url: backends[0]!.url, weight: 3 },
        { id: 'light', url: backends[1]!.url, weight: 1 },
      ],
      plugins: ['least-connections'],
      log: { access: false },
    });
    cleanup.defer(() => wslb.stop());
    const { clients, perBackend } = await openClients(wslb.url, 40);
    cleanup.defer(() => closeAll(clients));
    assert.deepEqual(perBackend, { b1: 30, b2: 10 });
  });

  it('rejects choices below 2 with its JSON path (exit 2)', async () => {
    const { dir, file } = writeTempConfig({
      backends: [{ url: 'ws://127.0.0.1:9001' }],
      plugins: [{ use: 'least-connections', options: { choices: 1 } }],
    });
    cleanup.defer(async () => rmSync(dir, { recursive: true, force: true }));
    const result = await execWslb(['--check', '--config', file]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /\/plugins\/0\/options\/choices: must be >= 2/);
  });
});
