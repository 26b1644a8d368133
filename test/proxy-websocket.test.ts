import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import roundRobin from '@wslb/round-robin';
import {
  createCleanup,
  type EchoBackend,
  type TestProxy,
  assertNoLeakedHandles,
  closeAll,
  closed,
  openClient,
  openClients,
  roundTrip,
  startEchoBackends,
  startProxy,
  upgradeRequest,
  waitFor,
  webSocketKey,
} from '@wslb/testing';
import WebSocket from 'ws';
import { deadPort, rawBackend, refusingBackend } from './helpers/servers.js';

describe('WebSocket through createProxy', { timeout: 60_000 }, () => {
  let backends: EchoBackend[];
  let proxy: TestProxy;

  before(async () => {
    backends = await startEchoBackends(3);
    proxy = await startProxy({
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      plugins: [roundRobin()],
    });
  });

  after(async () => {
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
    await assertNoLeakedHandles();
  });

  it('spreads 30 sockets 10/10/10 over 3 backends with round-robin', async () => {
    const { clients, perBackend } = await openClients(proxy.url, 30);
    assert.deepEqual(perBackend, { b1: 10, b2: 10, b3: 10 });
    await closeAll(clients);
  });

  it('passes path, query and X-Forwarded-* to the backend', async () => {
    const client = await openClient(`${proxy.url}/chat/room?user=ana&x=1`);
    const backend = backends.find((b) => b.id === client.backend)!;
    const seen = backend.seen.filter((s) => s.kind === 'ws').at(-1)!;
    assert.equal(seen.url, '/chat/room?user=ana&x=1');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], `127.0.0.1:${proxy.port}`);
    assert.equal(seen.headers.forwarded, `for=127.0.0.1;proto=http;host="127.0.0.1:${proxy.port}"`);
    assert.equal(seen.headers.upgrade, 'websocket');
    await closeAll([client]);
  });

  it('replaces X-Forwarded-For sent by an untrusted client', async () => {
    const client = await openClient(`${proxy.url}/spoof`, { headers: { 'x-forwarded-for': '6.6.6.6' } });
    const backend = backends.find((b) => b.id === client.backend)!;
    const seen = backend.seen.filter((s) => s.url === '/spoof').at(-1)!;
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    await closeAll([client]);
  });

  it('echoes a 1 MiB binary message and a UTF-8 text message intact', async () => {
    const { ws } = await openClient(proxy.url);
    const blob = randomBytes(1024 * 1024);
    const binary = await roundTrip(ws, blob);
    assert.equal(binary.isBinary, true);
    assert.ok(Buffer.compare(binary.data as Buffer, blob) === 0, 'binary echo differs');
    const text = 'héllo wörld ✓ 你好 🚀'.repeat(1000);
    const reply = await roundTrip(ws, text);
    assert.equal(reply.isBinary, false);
    assert.equal(reply.data.toString('utf8'), text);
    await closeAll([ws]);
  });

  it('delivers 1000 pipelined messages in order', async () => {
    const { ws } = await openClient(proxy.url);
    const received: string[] = [];
    const all = new Promise<void>((resolve) => {
      ws.on('message', (data) => {
        received.push(data.toString());
        if (received.length === 1000) resolve();
      });
    });
    for (let i = 0; i < 1000; i++) ws.send(`m${i}`);
    await all;
    assert.deepEqual(
      received,
      Array.from({ length: 1000 }, (_, i) => `m${i}`),
    );
    await closeAll([ws]);
  });

  it('closes the backend socket when the client terminates', async () => {
    const client = await openClient(proxy.url);
    const backend = backends.find((b) => b.id === client.backend)!;
    await waitFor(() => backend.clients.size === 1, { message: 'backend socket open' });
    client.ws.terminate();
    await waitFor(() => backend.clients.size === 0, { message: 'backend socket closed' });
    await waitFor(() => proxy.proxy.connections.active === 0, { message: 'no live connection' });
  });

  it('passes a backend close code (4001) to the client', async () => {
    const client = await openClient(proxy.url);
    const backend = backends.find((b) => b.id === client.backend)!;
    await waitFor(() => backend.clients.size === 1);
    const result = closed(client.ws);
    backend.closeClients(4001, 'go away');
    assert.deepEqual(await result, { code: 4001, reason: 'go away' });
  });

  it('forwards bytes that came with the upgrade request (head)', async () => {
    // A raw client sends the request and a masked text frame in one write.
    const { connect } = await import('node:net');
    const key = webSocketKey();
    const frame = Buffer.from([
      0x81,
      0x85,
      1,
      2,
      3,
      4,
      ...Buffer.from('hello').map((b, i) => b ^ [1, 2, 3, 4][i % 4]!),
    ]);
    const request = Buffer.from(
      `GET /head HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const socket = connect(proxy.port, '127.0.0.1');
    const data: Buffer[] = [];
    socket.on('data', (c: Buffer) => data.push(c));
    socket.write(Buffer.concat([request, frame]));
    const echoed = await waitFor(() => {
      const all = Buffer.concat(data);
      const end = all.indexOf('\r\n\r\n');
      return end > 0 && all.length >= end + 4 + 7 ? all.subarray(end + 4) : undefined;
    });
    assert.equal(echoed[0], 0x81);
    assert.equal(echoed.subarray(2, 7).toString(), 'hello');
    socket.destroy();
  });

  it('refuses a bad Sec-WebSocket-Key with 400 and never tunnels it', async () => {
    const before = backends.reduce((n, b) => n + b.upgrades, 0);
    const answer = await upgradeRequest(proxy.url, {
      'sec-websocket-key': 'short',
      'sec-websocket-version': '13',
    });
    assert.equal(answer.status, 400);
    const missing = await upgradeRequest(proxy.url, { 'sec-websocket-version': '13' });
    assert.equal(missing.status, 400);
    assert.equal(
      backends.reduce((n, b) => n + b.upgrades, 0),
      before,
    );
  });

  it('answers 426 with Sec-WebSocket-Version: 13 to any version but 13 (RFC 6455)', async () => {
    for (const version of ['7', '8', '14', '13, 8', '']) {
      const answer = await upgradeRequest(proxy.url, {
        'sec-websocket-key': webSocketKey(),
        'sec-websocket-version': version,
      });
      assert.equal(answer.status, 426, `version "${version}"`);
      assert.equal(answer.headers['sec-websocket-version'], '13');
    }
  });

  it('refuses Upgrade: h2c with 400', async () => {
    const answer = await upgradeRequest(proxy.url, {
      upgrade: 'h2c',
      'http2-settings': 'AAMAAABkAAQAoAAAAAIAAAAA',
    });
    assert.equal(answer.status, 400);
  });

  it('keeps subprotocol negotiation end to end', async () => {
    const client = await openClient(proxy.url, { protocol: undefined });
    await closeAll([client]);
    const ws = new WebSocket(proxy.url, ['chat.v2', 'chat.v1']);
    // The echo backend (ws) picks the first offered protocol.
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    assert.equal(ws.protocol, 'chat.v2');
    await closeAll([ws]);
  });
});

describe('WebSocket failures through createProxy', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('skips a dead backend by retrying on the next one', async () => {
    const [alive] = (await startEchoBackends(1)).map((backend) => cleanup.add(backend));
    const dead = await deadPort();
    const proxy = cleanup.add(
      await startProxy({
        backends: [
          { id: 'dead', url: `ws://127.0.0.1:${dead}` },
          { id: alive!.id, url: alive!.url },
        ],
        plugins: [roundRobin()],
      }),
    );
    const { clients, perBackend } = await openClients(proxy.url, 6);
    assert.deepEqual(perBackend, { b1: 6 });
    assert.ok(proxy.proxy.pool.get('dead')!.failures >= 1, "proxy.proxy.pool.get('dead')!.failures >= 1");
    await closeAll(clients);
  });

  it('retries the upgrade on another backend when one closes without answering', async () => {
    const [alive] = (await startEchoBackends(1)).map((backend) => cleanup.add(backend));
    const hangUp = cleanup.add(await rawBackend((socket) => socket.once('data', () => socket.destroy())));
    const proxy = cleanup.add(
      await startProxy({
        backends: [
          { id: 'hangs-up', url: hangUp.url },
          { id: alive!.id, url: alive!.url },
        ],
        plugins: [roundRobin()],
      }),
    );
    const { clients, perBackend } = await openClients(proxy.url, 4);
    assert.deepEqual(perBackend, { b1: 4 });
    assert.ok(proxy.proxy.pool.get('hangs-up')!.failures >= 1, 'counted as a failure for passive checks');
    await closeAll(clients);
    const onlyHangUp = cleanup.add(await startProxy({ backends: [{ id: 'hangs-up', url: hangUp.url }] }));
    const answer = await upgradeRequest(onlyHangUp.url, {
      'sec-websocket-key': webSocketKey(),
      'sec-websocket-version': '13',
    });
    assert.equal(answer.status, 502);
  });

  it('answers 502 when every backend is dead', async () => {
    const proxy = cleanup.add(
      await startProxy({
        backends: [
          { id: 'd1', url: `ws://127.0.0.1:${await deadPort()}` },
          { id: 'd2', url: `ws://127.0.0.1:${await deadPort()}` },
        ],
      }),
    );
    const answer = await upgradeRequest(proxy.url, {
      'sec-websocket-key': webSocketKey(),
      'sec-websocket-version': '13',
    });
    assert.equal(answer.status, 502);
    assert.equal(proxy.proxy.connections.active, 0);
  });

  it('answers 503 with Retry-After when no backend is available', async () => {
    const [b] = (await startEchoBackends(1)).map((backend) => cleanup.add(backend));
    const proxy = cleanup.add(await startProxy({ backends: [{ id: 'only', url: b!.url }] }));
    proxy.proxy.pool.drain(proxy.proxy.pool.get('only')!);
    const answer = await upgradeRequest(proxy.url, {
      'sec-websocket-key': webSocketKey(),
      'sec-websocket-version': '13',
    });
    assert.equal(answer.status, 503);
    assert.ok(answer.headers['retry-after'], "answer.headers['retry-after']");
    assert.equal(b!.upgrades, 0);
  });

  for (const chunked of [false, true]) {
    it(`relays a backend's 403 to the client and closes both sockets (${chunked ? 'chunked' : 'content-length'})`, async () => {
      const backend = cleanup.add(await refusingBackend(403, 'no entry for you', chunked));
      const proxy = cleanup.add(await startProxy({ backends: [{ id: 'refuser', url: backend.url }] }));
      const answer = await upgradeRequest(proxy.url, {
        'sec-websocket-key': webSocketKey(),
        'sec-websocket-version': '13',
      });
      assert.equal(answer.status, 403);
      assert.equal(answer.body, 'no entry for you');
      assert.equal(answer.headers['x-refused-by'], 'test');
      await waitFor(() => backend.sockets.size === 0, { message: 'backend socket closed by the proxy' });
      await waitFor(() => proxy.proxy.connections.active === 0);
    });
  }
});
