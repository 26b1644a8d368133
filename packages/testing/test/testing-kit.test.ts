import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import type { Backend, BackendState, Plugin } from '@wslb/core';
import {
  PIN_HEADER,
  assertNoLeakedHandles,
  closeAll,
  closed,
  createCleanup,
  openClient,
  roundTrip,
  startCluster,
  startEchoBackend,
  upgradeRequest,
  waitFor,
  webSocketKey,
} from '../src/index.js';

const upgradeHeaders = (): Record<string, string> => ({
  'sec-websocket-key': webSocketKey(),
  'sec-websocket-version': '13',
});

describe('@wslb/testing', { timeout: 30_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('rejects start() on a busy port instead of crashing the process', async () => {
    const first = await startEchoBackend({ id: 'first' });
    cleanup.defer(() => first.close());
    await assert.rejects(startEchoBackend({ id: 'twin', port: first.port }), /EADDRINUSE/);
  });

  it('starts named echo backends behind a proxy and reports who served each socket', async () => {
    const cluster = cleanup.add(await startCluster({ backends: 3 }));
    assert.deepEqual(
      cluster.backends.map((b) => b.id),
      ['b1', 'b2', 'b3'],
    );
    const { clients, perBackend } = await cluster.open(6, { path: '/room?x=1' });
    assert.deepEqual(perBackend, { b1: 2, b2: 2, b3: 2 });
    const reply = await roundTrip(clients[0]!.ws, 'ping');
    assert.equal(reply.data.toString(), 'ping');
    assert.equal(cluster.echo('b1').seen.at(-1)!.url, '/room?x=1');
  });

  it('marks a backend down and up the way health checks do, and pool hooks see it', async () => {
    const cluster = cleanup.add(await startCluster({ backends: 3 }));
    const changes: Array<[string, BackendState, BackendState]> = [];
    cluster.proxy.hooks.backendState.tap('test', (backend: Backend, previous) =>
      changes.push([backend.id, previous, backend.state]),
    );
    cluster.down('b2');
    assert.deepEqual((await cluster.open(4)).perBackend, { b1: 2, b3: 2 });
    cluster.up('b2');
    const after = await cluster.open(3);
    assert.equal(after.perBackend.b2, 1);
    assert.deepEqual(changes, [
      ['b2', 'up', 'down'],
      ['b2', 'down', 'up'],
    ]);
  });

  it('drains a backend: no new sockets, live ones keep working, health results do not lift it', async () => {
    const cluster = cleanup.add(await startCluster({ backends: 2 }));
    const live = await openClient(cluster.url, cluster.pinned('b2'));
    assert.equal(live.backend, 'b2');
    cluster.drain('b2');
    assert.equal(cluster.backend('b2').state, 'draining');
    assert.deepEqual((await cluster.open(3)).perBackend, { b1: 3 });
    assert.equal((await roundTrip(live.ws, 'still here')).data.toString(), 'still here');
    cluster.up('b2');
    assert.equal(cluster.backend('b2').state, 'draining');
    cluster.enable('b2');
    assert.equal(cluster.backend('b2').state, 'up');
    await closeAll([live]);
  });

  it('fills a backend to its maxConnections with live sockets, so it is no candidate', async () => {
    const cluster = cleanup.add(
      await startCluster({ backends: 2, backendOptions: { b1: { maxConnections: 2 } } }),
    );
    const held = await cluster.fill('b1');
    assert.equal(held.length, 2);
    assert.equal(cluster.backend('b1').active, 2);
    assert.equal(cluster.echo('b1').clients.size, 2);
    assert.deepEqual(
      cluster.proxy.pool.candidates().map((b) => b.id),
      ['b2'],
    );
    assert.deepEqual((await cluster.open(3)).perBackend, { b2: 3 });
    // A socket pinned to a full backend is refused, not sent elsewhere.
    const refused = await upgradeRequest(cluster.url, { ...upgradeHeaders(), [PIN_HEADER]: 'b1' });
    assert.equal(refused.status, 503);
    await closeAll(held);
    await waitFor(() => cluster.backend('b1').active === 0, { message: 'b1 emptied' });
    assert.equal((await openClient(cluster.url, cluster.pinned('b1'))).backend, 'b1');
  });

  it('answers 503 with Retry-After once every backend is full', async () => {
    const cluster = cleanup.add(
      await startCluster({
        backends: 2,
        backendOptions: { b1: { maxConnections: 1 }, b2: { maxConnections: 1 } },
      }),
    );
    await cluster.fill('b1');
    await cluster.fill('b2');
    const answer = await upgradeRequest(cluster.url, upgradeHeaders());
    assert.equal(answer.status, 503);
    assert.ok(answer.headers['retry-after'], "answer.headers['retry-after']");
  });

  it('fills a backend through a connect tap that wants a token, with the client options given', async () => {
    const tokenOnly: Plugin = {
      name: 'token-only',
      apply(proxy) {
        proxy.hooks.connect.tap('token-only', (ctx) => {
          const url = new URL(ctx.request?.url ?? '/', 'http://x');
          const ok =
            ctx.request?.headers.authorization === 'Bearer t0k' || url.searchParams.get('token') === 't0k';
          return ok ? undefined : { status: 401, reason: 'no token' };
        });
      },
    };
    const cluster = cleanup.add(
      await startCluster({
        backends: 2,
        plugins: [tokenOnly],
        backendOptions: { b1: { maxConnections: 2 }, b2: { maxConnections: 1 } },
      }),
    );
    // The pin bypasses select taps only: connect taps see pinned sockets.
    await assert.rejects(cluster.fill('b1'), /unexpected response 401/);
    const byHeader = await cluster.fill('b1', { headers: { authorization: 'Bearer t0k' } });
    assert.deepEqual(
      byHeader.map((c) => c.backend),
      ['b1', 'b1'],
    );
    const byQuery = await cluster.fill('b2', { path: '/live?token=t0k' });
    assert.equal(byQuery.length, 1);
    assert.equal(cluster.echo('b2').seen.at(-1)!.url, '/live?token=t0k');
    assert.equal(cluster.echo('b1').seen.at(-1)!.headers[PIN_HEADER], 'b1');
  });

  it('refuses to fill a backend without maxConnections', async () => {
    const cluster = cleanup.add(await startCluster({ backends: 1 }));
    await assert.rejects(cluster.fill('b1'), /no maxConnections/);
    assert.throws(() => cluster.backend('nope'), /no backend "nope"/);
  });

  it('makes slow and refusing backends on demand', async () => {
    const slow = cleanup.add(await startEchoBackend({ id: 'slow', upgradeDelayMs: 150 }));
    const started = Date.now();
    const client = await openClient(slow.url);
    assert.ok(Date.now() - started >= 140, 'the 101 came late');
    await closeAll([client]);
    slow.upgradeDelayMs = 0;
    slow.upgradeStatus = 503;
    await assert.rejects(openClient(slow.url), (err: Error & { status?: number }) => err.status === 503);
  });

  it('restarts a backend in place: same object, port, id, options and seen list', async () => {
    const cluster = cleanup.add(await startCluster({ backends: 2 }));
    const b1 = cluster.echo('b1');
    const port = b1.port;
    assert.equal((await openClient(cluster.url, cluster.pinned('b1'))).backend, 'b1');
    b1.upgradeDelayMs = 20;
    await b1.kill();
    assert.equal(await b1.restart(), b1);
    assert.equal(cluster.echo('b1'), b1);
    assert.equal(b1.port, port);
    assert.equal(b1.upgradeDelayMs, 20);
    const again = await openClient(cluster.url, cluster.pinned('b1'));
    assert.equal(again.backend, 'b1');
    assert.equal((await roundTrip(again.ws, 'back')).data.toString(), 'back');
    assert.equal(b1.upgrades, 2, 'the upgrades before and after the restart');
    // Restarting a running backend drops its sockets, like a restarted process.
    await b1.restart();
    assert.equal((await closed(again.ws)).code, 1006);
    assert.equal((await openClient(cluster.url, cluster.pinned('b1'))).backend, 'b1');
    // cluster.close() (run by the cleanup) stops the restarted backend: no handle leaks.
  });

  it('closes a backend cleanly: a close frame 1001 to each client, through the proxy too', async () => {
    const cluster = cleanup.add(await startCluster({ backends: 2 }));
    const viaProxy = await openClient(cluster.url, cluster.pinned('b1'));
    const direct = await openClient(cluster.echo('b1').url);
    const codes = Promise.all([closed(viaProxy.ws), closed(direct.ws)]);
    const started = Date.now();
    await cluster.echo('b1').close();
    assert.deepEqual(
      (await codes).map((c) => c.code),
      [1001, 1001],
    );
    assert.ok(Date.now() - started < 500, 'clients that answer the close frame are not waited for');
    assert.equal(cluster.echo('b1').clients.size, 0);
    // kill() stays abrupt.
    const b2 = cluster.echo('b2');
    const crashed = await openClient(b2.url);
    await b2.kill();
    assert.equal((await closed(crashed.ws)).code, 1006);
  });

  it('closes a backend whose client never answers the close frame after a bounded wait', async () => {
    const backend = cleanup.add(await startEchoBackend({ id: 'b1' }));
    const socket = connect(backend.port, '127.0.0.1');
    cleanup.defer(() => socket.destroy());
    socket.write(
      `GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Key: ${webSocketKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await waitFor(() => backend.clients.size === 1, { message: 'the upgrade accepted' });
    // This peer reads the close frame but never answers it.
    socket.resume();
    const gone = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const started = Date.now();
    await backend.close();
    const took = Date.now() - started;
    assert.ok(took >= 900 && took < 3000, `gave the client a second, then cut it off: ${took} ms`);
    await gone;
  });

  it('closes every socket it opened when the cluster closes', async () => {
    const cluster = await startCluster({ backends: 2 });
    const { clients } = await cluster.open(4);
    await cluster.close();
    assert.ok(
      clients.every((c) => c.ws.readyState === c.ws.CLOSED),
      'clients.every((c) => c.ws.readyState === c.ws.CLOSED)',
    );
    assert.equal(
      cluster.backends.reduce((n, b) => n + b.clients.size, 0),
      0,
    );
  });

  it('runs cleanups newest first, all of them, and rethrows the first failure', async () => {
    const list = createCleanup();
    const order: string[] = [];
    list.defer(() => order.push('first'));
    list.defer(() => {
      order.push('second');
      throw new Error('second failed');
    });
    list.add({ close: async () => order.push('third') });
    await assert.rejects(list.run(), /second failed/);
    assert.deepEqual(order, ['third', 'second', 'first']);
    await list.run();
    assert.equal(order.length, 3);
  });
});
