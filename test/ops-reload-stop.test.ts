import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { createLogger, createProxy } from '@wslb/core';
import {
  createCleanup,
  type OpenedClient,
  assertNoLeakedHandles,
  closeAll,
  closed,
  openClient,
  openClients,
  roundTrip,
  runWslb,
  startEchoBackends,
  waitFor,
} from '@wslb/testing';

async function echoAll(clients: OpenedClient[]): Promise<void> {
  const replies = await Promise.all(clients.map((c, i) => roundTrip(c.ws, `still here ${i}`)));
  replies.forEach((r, i) => assert.equal(r.data.toString(), `still here ${i}`));
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('reload and graceful stop through the binary', { timeout: 120_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('keeps 100 live sockets through a reload that adds, removes and reweights backends', async () => {
    const backends = await startEchoBackends(4);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const [b1, b2, b3, b4] = backends as [
      (typeof backends)[0],
      (typeof backends)[0],
      (typeof backends)[0],
      (typeof backends)[0],
    ];
    const base = { listen: { host: '127.0.0.1', port: 0 }, plugins: ['round-robin'] };
    const wslb = await runWslb({
      ...base,
      backends: [b1, b2, b3].map((b) => ({ id: b!.id, url: b!.url })),
    });
    cleanup.defer(() => wslb.stop());
    const { clients, perBackend } = await openClients(wslb.url, 100);
    assert.deepEqual(perBackend, { b1: 34, b2: 33, b3: 33 });
    cleanup.defer(() => closeAll(clients));

    wslb.writeConfig({
      ...base,
      listen: { host: '127.0.0.1', port: wslb.port },
      backends: [
        { id: 'b1', url: b1.url, weight: 3 },
        { id: 'b2', url: b2.url, weight: 1 },
        { id: 'b4', url: b4.url, weight: 1 },
      ],
    });
    wslb.child.kill('SIGHUP');
    await wslb.waitForLog((l) => l.msg === 'reloaded');

    // Every old socket, those on the removed b3 included, still echoes.
    await echoAll(clients);
    assert.equal(b3.clients.size, 33);

    const after = await openClients(wslb.url, 10);
    assert.deepEqual(after.perBackend, { b1: 6, b2: 2, b4: 2 });
    await closeAll(after.clients);
  });

  it('keeps serving the old config when the reloaded file is invalid, and logs why', async () => {
    const backends = await startEchoBackends(2);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
    });
    cleanup.defer(() => wslb.stop());
    const live = await openClient(wslb.url);
    cleanup.defer(() => closeAll([live]));
    wslb.writeConfig('{ "backends": [ { "url": 42 } ] }');
    wslb.child.kill('SIGHUP');
    const line = await wslb.waitForLog((l) => l.code === 'WSLB_ERR_CONFIG_INVALID');
    assert.match(JSON.stringify(line), /\/backends\/0\/url/);
    assert.equal((await roundTrip(live.ws, 'old config')).data.toString(), 'old config');
    const { clients, perBackend } = await openClients(wslb.url, 2);
    assert.deepEqual(perBackend, { b1: 1, b2: 1 });
    await closeAll(clients);
  });

  it('on SIGTERM stops accepting, lets tunnels work until timeouts.drain, then exits 0', async () => {
    const backends = await startEchoBackends(1);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const drain = 1500;
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'b1', url: backends[0]!.url }],
      timeouts: { drain },
    });
    const clients = await Promise.all([openClient(wslb.url), openClient(wslb.url), openClient(wslb.url)]);
    const closedAt: number[] = [];
    for (const c of clients) c.ws.on('close', () => closedAt.push(Date.now()));
    const signalledAt = Date.now();
    wslb.child.kill('SIGTERM');
    await wslb.waitForLog((l) => l.msg === 'draining');
    assert.ok(await refused(wslb.port), 'no new connections while draining');
    await new Promise((r) => setTimeout(r, 500));
    await echoAll(clients);
    const code = await wslb.exited;
    const exitedAt = Date.now();
    assert.equal(code, 0);
    assert.ok(exitedAt - signalledAt >= drain - 100, `exited after ${exitedAt - signalledAt} ms`);
    assert.ok(exitedAt - signalledAt < drain + 3000, `exited after ${exitedAt - signalledAt} ms`);
    await waitFor(() => closedAt.length === 3);
    assert.ok(
      closedAt.every((t) => t - signalledAt >= drain - 100),
      'no socket closed before the deadline',
    );
  });

  it('while draining, answers requests on open keep-alive connections with 503 and Connection: close', async () => {
    const backends = await startEchoBackends(1);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'b1', url: backends[0]!.httpUrl }],
      timeouts: { drain: 1500 },
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.defer(async () => agent.destroy());
    const get = () =>
      new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: wslb.port, path: '/', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal((await get()).status, 200);
    const tunnel = await openClient(wslb.url);
    wslb.child.kill('SIGTERM');
    await wslb.waitForLog((l) => l.msg === 'draining');
    const during = await get();
    assert.equal(during.status, 503);
    assert.equal(during.connection, 'close');
    assert.equal(await wslb.exited, 0);
    await closeAll([tunnel]);
  });

  it('takes a signal delivered twice at once as one stop (Ctrl-C to a process group), a later one as "now"', async () => {
    const backends = await startEchoBackends(1);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const config = {
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'b1', url: backends[0]!.url }],
      timeouts: { drain: 1500 },
    };
    // The same SIGINT from the terminal and from a parent that forwards it: still a drain.
    const twice = await runWslb(config);
    const client = await openClient(twice.url);
    twice.child.kill('SIGINT');
    twice.child.kill('SIGINT');
    await twice.waitForLog((l) => l.msg === 'draining');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await roundTrip(client.ws, 'still here')).data.toString(), 'still here');
    assert.equal((await closed(client.ws)).code, 1001, 'closed at the drain deadline, not cut');
    assert.equal(await twice.exited, 0);

    // An operator's second Ctrl-C, a moment later: out at once.
    const later = await runWslb(config);
    const held = await openClient(later.url);
    later.child.kill('SIGINT');
    await later.waitForLog((l) => l.msg === 'draining');
    await new Promise((r) => setTimeout(r, 700));
    later.child.kill('SIGINT');
    assert.equal(await later.exited, 1);
    await closed(held.ws);
  });

  it('on SIGTERM exits as soon as the last tunnel ends', async () => {
    const backends = await startEchoBackends(1);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'b1', url: backends[0]!.url }],
      timeouts: { drain: 20_000 },
    });
    const client = await openClient(wslb.url);
    wslb.child.kill('SIGTERM');
    await wslb.waitForLog((l) => l.msg === 'draining');
    const started = Date.now();
    client.ws.close(1000);
    assert.equal(await wslb.exited, 0);
    assert.ok(Date.now() - started < 5000, 'Date.now() - started < 5000');
  });
});

describe('listener changes on reload (in code)', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('moves to a new port without dropping sockets, and rolls back when the new port is taken', async () => {
    const backends = await startEchoBackends(2);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const config = {
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'b1', url: backends[0]!.url }],
    };
    const proxy = createProxy(config, { logger: createLogger({ level: 'silent' }) });
    cleanup.defer(() => proxy.close({ drain: 0 }));
    const [first] = await proxy.listen();
    const live = await openClient(`ws://127.0.0.1:${first!.port}`);
    cleanup.defer(() => closeAll([live]));

    // Same listener, written with the port it got: nothing restarts.
    await proxy.reload({ ...config, listen: { host: '127.0.0.1', port: first!.port } });
    assert.equal(proxy.addresses()[0]!.port, first!.port);

    // A port in use: the reload fails whole and the old listener and backends stay.
    await assert.rejects(
      proxy.reload({
        listen: { host: '127.0.0.1', port: backends[1]!.port },
        backends: [{ id: 'b2', url: backends[1]!.url }],
      }),
      /EADDRINUSE/,
    );
    assert.equal(proxy.addresses()[0]!.port, first!.port);
    assert.deepEqual(
      proxy.pool.list().map((b) => b.id),
      ['b1'],
    );
    const again = await openClient(`ws://127.0.0.1:${first!.port}`);
    await closeAll([again]);

    // A free new port: new sockets there, none on the old one, the old socket still echoes.
    await proxy.reload({ ...config, listen: { host: '127.0.0.1', port: 0 }, backends: config.backends });
    await proxy.reload({
      ...config,
      listen: [
        { host: '127.0.0.1', port: first!.port },
        { host: '127.0.0.1', port: 0 },
      ],
    });
    const ports = proxy.addresses().map((a) => a.port);
    assert.equal(ports.length, 2);
    const moved = ports.find((p) => p !== first!.port)!;
    await proxy.reload({ ...config, listen: { host: '127.0.0.1', port: moved } });
    assert.deepEqual(
      proxy.addresses().map((a) => a.port),
      [moved],
    );
    assert.ok(await refused(first!.port), 'await refused(first!.port)');
    const onNew = await openClient(`ws://127.0.0.1:${moved}`);
    assert.equal((await roundTrip(live.ws, 'survived')).data.toString(), 'survived');
    await closeAll([onNew]);
  });
});
