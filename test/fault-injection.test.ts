import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { CloseInfo, Plugin } from '@wslb/core';
import {
  createCleanup,
  type EchoBackend,
  type OpenedClient,
  type TestProxy,
  type TestProxyConfig,
  assertNoLeakedHandles,
  closeAll,
  openClient,
  roundTrip,
  startEchoBackend,
  startProxy,
  waitFor,
  webSocketKey,
} from '@wslb/testing';
import {
  type RawPeer,
  type RawServer,
  rawClient,
  rawServer,
  requestHead,
  switchingProtocols,
  upgradeHead,
  wsFrame,
} from './helpers/peers.js';
import { routeByPath } from './helpers/route.js';

/*
 * Faults on either side of a tunnel, one at a time, beside a healthy "bystander" WebSocket. Each
 * test checks what the client sees (status or close), that both sockets of the faulty connection
 * are really gone (the raw peers are stubborn: they only go away on a destroyed socket), that the
 * counters are back to zero and that the bystander still echoes.
 */

/** A clean close of both directions is reported as closed by one side or the other. */
const CLEAN: Array<CloseInfo['reason']> = ['client-closed', 'backend-closed'];

interface Recorded {
  url: string;
  reason: CloseInfo['reason'];
  status: number;
}

function closeRecorder(into: Recorded[]): Plugin {
  return {
    name: 'close-recorder',
    apply(proxy) {
      proxy.hooks.close.tap('close-recorder', (ctx, info) => {
        into.push({ url: ctx.request?.url ?? '', reason: info.reason, status: info.status });
      });
    },
  };
}

function delayResponse(ms: number): Plugin {
  return {
    name: 'delay-response',
    apply(proxy) {
      proxy.hooks.response.tapPromise('delay-response', () => new Promise((r) => setTimeout(r, ms)));
    },
  };
}

describe('fault injection', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  let healthy: EchoBackend;
  let faulty: RawServer;
  let proxy: TestProxy;
  let bystander: OpenedClient;
  let closes: Recorded[];

  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  /** A proxy with a healthy echo backend, a raw faulty one, and a bystander WebSocket open. */
  async function setup(
    onPeer: (peer: RawPeer) => void | Promise<void> = () => {},
    config: Partial<TestProxyConfig> = {},
    stubborn = true,
    extraPlugins: Plugin[] = [],
  ): Promise<void> {
    healthy = await startEchoBackend({ id: 'healthy' });
    cleanup.defer(() => healthy.close());
    faulty = await rawServer(onPeer, { stubborn });
    cleanup.defer(() => faulty.close());
    closes = [];
    proxy = await startProxy({
      ...config,
      backends: [
        { id: 'healthy', url: healthy.url },
        { id: 'faulty', url: faulty.url },
      ],
      plugins: [routeByPath(), closeRecorder(closes), ...extraPlugins],
    });
    cleanup.defer(() => proxy.close());
    bystander = await openClient(`${proxy.url}/healthy/bystander`);
    cleanup.defer(() => closeAll([bystander]));
    assert.equal((await roundTrip(bystander.ws, 'before')).data.toString(), 'before');
  }

  /** A raw client that sent an upgrade request for the faulty backend. */
  async function upgradeToFaulty(path = '/faulty/ws', stubborn = true): Promise<RawPeer> {
    const client = await rawClient(proxy.port, { stubborn });
    cleanup.defer(async () => client.destroy());
    client.write(upgradeHead(path, webSocketKey()));
    return client;
  }

  /** Both sockets of the faulty connection gone, counters at zero, the bystander untouched. */
  async function assertSettled(
    client: RawPeer,
    reason?: CloseInfo['reason'] | Array<CloseInfo['reason']>,
  ): Promise<void> {
    await client.untilClosed();
    await waitFor(() => faulty.open === 0, { message: 'the backend-side socket to be gone' });
    await waitFor(() => proxy.proxy.connections.active === 1, {
      message: `only the bystander live (active ${proxy.proxy.connections.active})`,
    });
    assert.equal(proxy.proxy.pool.get('faulty')!.active, 0, 'faulty backend active count');
    assert.equal(proxy.proxy.pool.get('healthy')!.active, 1, 'healthy backend active count');
    assert.equal(healthy.clients.size, 1, 'the bystander is still open on its backend');
    assert.equal((await roundTrip(bystander.ws, 'after')).data.toString(), 'after');
    if (reason) {
      // Exactly one close per connection, with the expected reason (either side for a clean close).
      const faultyCloses = closes.filter((c) => c.url.startsWith('/faulty'));
      assert.equal(faultyCloses.length, 1, `one close hook call, got ${JSON.stringify(faultyCloses)}`);
      assert.ok(
        (Array.isArray(reason) ? reason : [reason]).includes(faultyCloses[0]!.reason),
        `close reason ${faultyCloses[0]!.reason}, expected ${String(reason)}`,
      );
    }
  }

  it('backend resets during the handshake: 502, both sockets gone', async () => {
    await setup(async (peer) => {
      await requestHead(peer);
      peer.reset();
    });
    const client = await upgradeToFaulty();
    const head = await client.untilHead();
    assert.equal(head.status, 502);
    await assertSettled(client, 'backend-failed');
  });

  it('backend closes during the handshake without answering: 502', async () => {
    await setup(async (peer) => {
      await requestHead(peer);
      peer.end();
    });
    const client = await upgradeToFaulty();
    assert.equal((await client.untilHead()).status, 502);
    await assertSettled(client, 'backend-failed');
  });

  it('backend resets right after its 101: the client is closed, the counters drop', async () => {
    await setup();
    const client = await upgradeToFaulty();
    const backend = await faulty.accepted(1);
    backend.write(switchingProtocols(await requestHead(backend)));
    assert.equal((await client.untilHead()).status, 101);
    backend.reset();
    await assertSettled(client, 'backend-error');
  });

  it('backend resets in the middle of a message: the client gets the partial bytes, then the close', async () => {
    await setup();
    const client = await upgradeToFaulty();
    const backend = await faulty.accepted(1);
    backend.write(switchingProtocols(await requestHead(backend)));
    const frame = wsFrame('x'.repeat(300));
    backend.write(frame.subarray(0, 100));
    const head = await client.until((c) => {
      const h = c.head;
      return h && h.rest.length >= 100 ? h : undefined;
    }, 'the first 100 bytes of the frame');
    assert.ok(Buffer.compare(head.rest, frame.subarray(0, 100)) === 0, 'the partial frame arrives intact');
    backend.reset();
    await assertSettled(client, 'backend-error');
    assert.equal(client.head!.rest.length, 100, 'nothing after the reset');
  });

  it('client resets in the middle of a message: the backend socket is destroyed', async () => {
    await setup();
    const client = await upgradeToFaulty();
    const backend = await faulty.accepted(1);
    backend.write(switchingProtocols(await requestHead(backend)));
    await client.untilHead();
    const frame = wsFrame('y'.repeat(300), { masked: true });
    client.write(frame.subarray(0, 120));
    await backend.until((b) => (b.head?.rest.length ?? 0) >= 120, 'the first 120 bytes at the backend');
    client.reset();
    await assertSettled(client, 'client-error');
  });

  it('client resets during the handshake: the backend dial is dropped', async () => {
    // The backend never answers; the handshake timeout (10 s) must not be what frees it.
    await setup();
    const client = await upgradeToFaulty();
    const backend = await faulty.accepted(1);
    await requestHead(backend);
    client.reset();
    await assertSettled(client, 'client-closed');
    assert.ok(backend.closed, 'backend.closed');
  });

  it('backend accepts TCP but never answers: 504 after timeouts.handshake', async () => {
    await setup(() => {}, { timeouts: { handshake: 300 } });
    const client = await upgradeToFaulty();
    const head = await client.untilHead();
    assert.equal(head.status, 504);
    await assertSettled(client, 'timeout');
  });

  it('backend answers 101 with a garbage header line: 502', async () => {
    await setup(async (peer) => {
      await requestHead(peer);
      peer.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nthis is not a header\r\n\r\n');
    });
    const client = await upgradeToFaulty();
    assert.equal((await client.untilHead()).status, 502);
    await assertSettled(client, 'backend-failed');
  });

  it('backend answers with bytes that are not HTTP: 502', async () => {
    await setup(async (peer) => {
      await requestHead(peer);
      peer.write(Buffer.from([0, 1, 2, 0xff, 13, 10, 13, 10, 9, 9]));
    });
    const client = await upgradeToFaulty();
    assert.equal((await client.untilHead()).status, 502);
    await assertSettled(client, 'backend-failed');
  });

  it('backend sends garbage after a valid 101: relayed verbatim, then the client reset ends both', async () => {
    const garbage = Buffer.from([0xff, 0xfe, 0x00, 0x13, 0x37, 0x42, 0x99]);
    await setup(async (peer) => {
      peer.write(Buffer.concat([Buffer.from(switchingProtocols(await requestHead(peer))), garbage]));
    });
    const client = await upgradeToFaulty();
    const head = await client.until((c) => {
      const h = c.head;
      return h && h.rest.length >= garbage.length ? h : undefined;
    }, 'the garbage after the 101');
    assert.equal(head.status, 101);
    assert.ok(Buffer.compare(head.rest, garbage) === 0, 'Buffer.compare(head.rest, garbage) === 0');
    client.reset();
    await assertSettled(client, 'client-error');
  });

  it('client half-closes during the handshake: the 101 and frames still reach it', async () => {
    await setup(undefined, {}, false);
    const client = await upgradeToFaulty('/faulty/ws', false);
    client.end();
    const backend = await faulty.accepted(1);
    const request = await requestHead(backend);
    const frame = wsFrame('still here');
    backend.write(Buffer.concat([Buffer.from(switchingProtocols(request)), frame]));
    const head = await client.until((c) => {
      const h = c.head;
      return h && h.rest.length >= frame.length ? h : undefined;
    }, 'the 101 and a frame');
    assert.equal(head.status, 101);
    assert.ok(Buffer.compare(head.rest, frame) === 0, 'Buffer.compare(head.rest, frame) === 0');
    // The client's FIN is passed on once the tunnel is up.
    await backend.until((b) => b.ended, 'the FIN at the backend');
    backend.end();
    await assertSettled(client, CLEAN);
  });

  for (const slowTap of [false, true]) {
    it(`backend sends its 101, a frame and its FIN at once${slowTap ? ' (slow response tap)' : ''}: all reach the client, which can still send`, async () => {
      // A response tap that awaits lets the FIN arrive before the tunnel exists.
      const plugins = slowTap ? [delayResponse(30)] : [];
      await setup(undefined, {}, false, plugins);
      const client = await upgradeToFaulty('/faulty/ws', false);
      const backend = await faulty.accepted(1);
      const bye = wsFrame('bye');
      backend.socket.end(Buffer.concat([Buffer.from(switchingProtocols(await requestHead(backend))), bye]));
      await client.until((c) => c.ended, 'the FIN at the client');
      assert.ok(client.head!.rest.equals(bye), 'client.head!.rest.equals(bye)');
      const late = wsFrame('ok, bye', { masked: true });
      client.write(late);
      await backend.until(
        (b) => (b.head?.rest.length ?? 0) >= late.length,
        'the late message at the backend',
      );
      assert.ok(backend.head!.rest.equals(late), 'backend.head!.rest.equals(late)');
      client.end();
      await assertSettled(client, CLEAN);
    });
  }

  it('half-close, client first: the backend can still send, then both close', async () => {
    await setup(undefined, {}, false);
    const client = await upgradeToFaulty('/faulty/ws', false);
    const backend = await faulty.accepted(1);
    backend.write(switchingProtocols(await requestHead(backend)));
    await client.untilHead();
    client.write(wsFrame('last words', { masked: true }));
    client.end();
    await backend.until((b) => b.ended, 'the FIN at the backend');
    assert.ok(
      backend.head!.rest.equals(wsFrame('last words', { masked: true })),
      "backend.head!.rest.equals(wsFrame('last words', { masked: true }))",
    );
    const late = wsFrame('a late reply');
    backend.write(late);
    await client.until((c) => (c.head?.rest.length ?? 0) >= late.length, 'the late reply');
    assert.ok(client.head!.rest.equals(late), 'client.head!.rest.equals(late)');
    assert.equal(client.closed, false);
    backend.end();
    await assertSettled(client, CLEAN);
  });

  it('half-close, backend first: the client can still send, then both close', async () => {
    await setup(undefined, {}, false);
    const client = await upgradeToFaulty('/faulty/ws', false);
    const backend = await faulty.accepted(1);
    const goodbye = wsFrame('goodbye');
    backend.write(Buffer.concat([Buffer.from(switchingProtocols(await requestHead(backend))), goodbye]));
    backend.end();
    await client.until((c) => c.ended, 'the FIN at the client');
    assert.ok(client.head!.rest.equals(goodbye), 'client.head!.rest.equals(goodbye)');
    const late = wsFrame('a late message', { masked: true });
    client.write(late);
    await backend.until((b) => (b.head?.rest.length ?? 0) >= late.length, 'the late message at the backend');
    assert.ok(backend.head!.rest.equals(late), 'backend.head!.rest.equals(late)');
    assert.equal(backend.closed, false);
    client.end();
    await assertSettled(client, CLEAN);
  });

  it('half-close that the other side never finishes: both destroyed after timeouts.halfClose', async () => {
    await setup(undefined, { timeouts: { halfClose: 300 } });
    const client = await upgradeToFaulty('/faulty/ws', false);
    const backend = await faulty.accepted(1);
    backend.write(switchingProtocols(await requestHead(backend)));
    await client.untilHead();
    client.end();
    // The stubborn backend keeps its side open (and writing) until the proxy cuts it.
    await assertSettled(client, 'half-close-timeout');
  });

  it("a backend's non-101 answer on a connection it keeps open: relayed, then its socket destroyed", async () => {
    await setup(async (peer) => {
      await requestHead(peer);
      peer.write('HTTP/1.1 401 Unauthorized\r\ncontent-length: 6\r\nx-why: token\r\n\r\nnope!\n');
    });
    const client = await upgradeToFaulty();
    await client.untilClosed();
    const head = client.head!;
    assert.equal(head.status, 401);
    assert.equal(head.headers['x-why'], 'token');
    assert.equal(head.rest.toString(), 'nope!\n');
    await assertSettled(client, 'completed');
  });

  it('plain HTTP: backend resets before answering: 502', async () => {
    await setup(async (peer) => {
      await requestHead(peer);
      peer.reset();
    });
    const client = await rawClient(proxy.port, { stubborn: true });
    cleanup.defer(async () => client.destroy());
    client.write('GET /faulty/page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal((await client.untilHead()).status, 502);
    await assertSettled(client, 'backend-failed');
  });

  it('plain HTTP: backend resets mid-body: the client connection is cut, not kept', async () => {
    await setup(async (peer) => {
      await requestHead(peer);
      peer.write(`HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n${'z'.repeat(100)}`);
      setTimeout(() => peer.reset(), 50);
    });
    const client = await rawClient(proxy.port, { stubborn: true });
    cleanup.defer(async () => client.destroy());
    client.write('GET /faulty/page HTTP/1.1\r\nHost: x\r\n\r\n');
    const head = await client.untilHead();
    assert.equal(head.status, 200);
    await client.untilClosed();
    assert.ok(client.head!.rest.length < 1000, 'the body is truncated, never completed with made-up bytes');
    await assertSettled(client);
  });
});
