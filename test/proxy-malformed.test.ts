import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { CloseInfo, ConnectionContext } from '@wslb/core';
import {
  type EchoBackend,
  type TestProxy,
  assertNoLeakedHandles,
  openClient,
  closeAll,
  createCleanup,
  runWslb,
  startEchoBackends,
  startProxy,
  webSocketKey,
} from '@wslb/testing';
import { rawExchange } from './helpers/raw.js';

describe('malformed and slow requests', { timeout: 60_000 }, () => {
  let backends: EchoBackend[];
  let proxy: TestProxy;

  before(async () => {
    backends = await startEchoBackends(1);
    proxy = await startProxy({
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      timeouts: { request: 500 },
    });
    proxy.proxy.hooks.close.tap('test', (ctx, info) => closes.push({ ctx, info }));
  });

  // What the close hook (and so the access line) saw of each refused request.
  const closes: Array<{ ctx: ConnectionContext; info: CloseInfo }> = [];
  beforeEach(() => {
    closes.length = 0;
  });
  const refusedOnce = (status: number, code: string): void => {
    assert.equal(closes.length, 1, `one close for the ${status}`);
    const [{ ctx, info }] = closes as [{ ctx: ConnectionContext; info: CloseInfo }];
    assert.equal(info.status, status);
    assert.equal(info.reason, 'rejected');
    assert.equal(info.error?.code, code);
    assert.equal(ctx.kind, 'http');
    assert.equal(ctx.request, undefined);
    assert.equal(ctx.clientAddress, '127.0.0.1');
    assert.ok(info.bytesIn > 0, 'the bytes it sent are counted');
  };

  after(async () => {
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
    await assertNoLeakedHandles();
  });

  it('answers garbage with 400 and closes the socket', async () => {
    const result = await rawExchange(proxy.port, ['\x16\x03\x01 this is not http\r\n\r\n']);
    assert.equal(result.status, 400);
    assert.ok(result.closed, 'result.closed');
    refusedOnce(400, 'WSLB_ERR_BAD_REQUEST');
  });

  it('answers a 64 KiB header with 431', async () => {
    const result = await rawExchange(proxy.port, [
      `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`,
    ]);
    assert.equal(result.status, 431);
    assert.ok(result.closed, 'result.closed');
    refusedOnce(431, 'WSLB_ERR_HEADERS_TOO_LARGE');
  });

  it('answers a header trickled past timeouts.request with 408 and closes', async () => {
    const started = Date.now();
    const pieces = [
      'GET / HTTP/1.1\r\n',
      'Host: x\r\n',
      'X-A: 1\r\n',
      'X-B: 2\r\n',
      'X-C: 3\r\n',
      'X-D: 4\r\n',
    ];
    const result = await rawExchange(proxy.port, pieces, { delayMs: 200, timeoutMs: 4000 });
    assert.equal(result.status, 408);
    assert.ok(result.closed, 'result.closed');
    assert.ok(Date.now() - started < 3000, 'closed near the 500 ms deadline');
    refusedOnce(408, 'WSLB_ERR_REQUEST_TIMEOUT');
  });

  it('closes a connection that sends nothing after timeouts.request', async () => {
    const result = await rawExchange(proxy.port, [], { timeoutMs: 4000 });
    assert.ok(result.closed, 'result.closed');
    assert.deepEqual(closes, [], 'an idle connection is no request: no close, no access line');
  });

  it('never tunnels an upgrade with an invalid key, even with valid-looking frames after it', async () => {
    const before = backends[0]!.upgrades;
    const result = await rawExchange(proxy.port, [
      'GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: !!!\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x80\x00\x00\x00\x00',
    ]);
    assert.equal(result.status, 400);
    assert.equal(backends[0]!.upgrades, before);
  });

  it('answers an upgrade with POST with 400', async () => {
    const result = await rawExchange(proxy.port, [
      `POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: ${webSocketKey()}\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n`,
    ]);
    assert.equal(result.status, 400);
  });

  it('answers CONNECT with 405 and never dials a backend', async () => {
    const before = backends[0]!.seen.length;
    const result = await rawExchange(proxy.port, [
      'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\nSSH-2.0-x\r\n',
    ]);
    assert.equal(result.status, 405);
    assert.ok(result.closed, 'result.closed');
    assert.equal(backends[0]!.seen.length, before);
    assert.equal(closes.length, 1);
    assert.equal(closes[0]!.info.status, 405);
    assert.equal(closes[0]!.ctx.request?.method, 'CONNECT');
  });

  it('answers an HTTP/1.1 request or upgrade without Host with 400, which is logged', async () => {
    const before = backends[0]!.seen.length;
    const plain = await rawExchange(proxy.port, ['GET /no-host HTTP/1.1\r\n\r\n']);
    assert.equal(plain.status, 400);
    assert.ok(plain.closed, 'plain.closed');
    const upgrade = await rawExchange(proxy.port, [
      `GET /no-host HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: ${webSocketKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ]);
    assert.equal(upgrade.status, 400);
    assert.ok(upgrade.closed, 'upgrade.closed');
    assert.equal(backends[0]!.seen.length, before, 'no backend saw either');
    assert.deepEqual(
      closes.map((c) => [c.ctx.kind, c.info.status, c.info.error?.message]),
      [
        ['http', 400, 'Missing Host header'],
        ['ws', 400, 'Missing Host header'],
      ],
    );
    // HTTP/1.0 has no Host requirement.
    const old = await rawExchange(proxy.port, ['GET /old HTTP/1.0\r\n\r\n']);
    assert.equal(old.status, 200);
  });

  it('keeps serving normal WebSockets after all of that', async () => {
    const client = await openClient(proxy.url);
    assert.equal(client.backend, 'b1');
    await closeAll([client]);
  });
});

describe('refusals to a client that keeps sending, through the binary', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  let backends: EchoBackend[];

  before(async () => {
    backends = await startEchoBackends(1);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
  });

  after(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('lets a client that is still sending read its 400, 431 or 426 instead of a reset', async () => {
    // Closing with unread bytes sends a reset, which makes the client's kernel drop the answer
    // it had not read yet: the proxy drains what keeps coming until the client closes.
    const tail = Buffer.alloc(4 << 20, 'x');
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      log: { level: 'info', access: false },
    });
    cleanup.defer(() => wslb.stop());
    const upgrade = (version: string): string =>
      'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${webSocketKey()}\r\nSec-WebSocket-Version: ${version}\r\n\r\n`;
    const cases: Array<[number, string]> = [
      [400, 'NOT HTTP\r\n'],
      [431, 'GET / HTTP/1.1\r\nHost: x\r\nX-Big: '],
      [426, upgrade('7')],
    ];
    for (let round = 0; round < 3; round++) {
      for (const [status, start] of cases) {
        const request = Buffer.concat([Buffer.from(start), tail]);
        const result = await rawExchange(wslb.port, [request], { timeoutMs: 8000 });
        assert.equal(result.status, status, `round ${round}: ${result.text.slice(0, 40) || 'no answer'}`);
        assert.ok(result.closed, `round ${round}: the ${status} connection is closed`);
      }
    }
  });
});
