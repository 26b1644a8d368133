import assert from 'node:assert/strict';
import { type Server, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  type EchoBackend,
  type TestProxy,
  assertNoLeakedHandles,
  startEchoBackend,
  startProxy,
  waitFor,
  webSocketKey,
} from '@wslb/testing';
import { checkResponses } from './helpers/fuzz.js';
import { rawClient, upgradeHead, webSocketAccept } from './helpers/peers.js';
import { rawExchange } from './helpers/raw.js';

/*
 * Regressions found by the fuzzer: a request body must reach the backend framed as the client
 * framed it. Otherwise the backend reads the body as a next request on a shared keep-alive
 * connection, which is how requests get smuggled past a proxy.
 */
describe('request body framing towards the backend', { timeout: 30_000 }, () => {
  let backend: EchoBackend;
  let proxy: TestProxy;

  before(async () => {
    backend = await startEchoBackend({ id: 'b1' });
    proxy = await startProxy({ backends: [{ id: 'b1', url: backend.url }] });
  });

  after(async () => {
    await proxy.close();
    await backend.close();
    await assertNoLeakedHandles();
  });

  const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';

  async function send(
    head: string,
    body: string,
  ): Promise<{ status: number; echoed: { body: string; url: string } }> {
    const answer = await rawExchange(proxy.port, [`${head}\r\n\r\n${body}`]);
    const start = answer.text.indexOf('{');
    const json = answer.text.slice(start, answer.text.lastIndexOf('}') + 1);
    return { status: answer.status, echoed: JSON.parse(json) as { body: string; url: string } };
  }

  for (const method of ['GET', 'DELETE', 'OPTIONS', 'POST']) {
    it(`a chunked ${method} body arrives whole, as one request`, async () => {
      const before = backend.seen.length;
      const chunk = smuggled;
      const { status, echoed } = await send(
        `${method} /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close`,
        `${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
      );
      assert.equal(status, 200);
      assert.equal(echoed.body, smuggled);
      assert.equal(echoed.url, '/chunked');
      // A second request reuses the backend connection: it must not find a leftover there.
      const next = await rawExchange(proxy.port, [
        'GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      ]);
      assert.equal(next.status, 200);
      assert.deepEqual(
        backend.seen.slice(before).map((s) => s.url),
        ['/chunked', '/next'],
      );
    });
  }

  it('a Connection header naming Content-Length cannot strip the framing', async () => {
    const before = backend.seen.length;
    const { status, echoed } = await send(
      `DELETE /named HTTP/1.1\r\nHost: x\r\nContent-Length: ${smuggled.length}\r\nConnection: close, content-length`,
      smuggled,
    );
    assert.equal(status, 200);
    assert.equal(echoed.body, smuggled);
    const next = await rawExchange(proxy.port, [
      'GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    ]);
    assert.equal(next.status, 200);
    assert.deepEqual(
      backend.seen.slice(before).map((s) => s.url),
      ['/named', '/next'],
    );
  });
});

/** A backend whose answers take `?ms=` milliseconds, and that accepts WebSocket upgrades. */
async function slowBackend(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0);
    setTimeout(() => res.end(`done ${req.url}`), ms);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req, socket: Socket) => {
    const accept = webSocketAccept(String(req.headers['sec-websocket-key']));
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.on('error', () => {});
    socket.on('end', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/*
 * Pipelined requests: whatever the proxy writes raw on a connection (a 400 for a later request
 * that does not parse, a 101, a 408 deadline) must wait for the responses to earlier requests.
 */
describe('pipelined requests', { timeout: 30_000 }, () => {
  let backend: { url: string; close(): Promise<void> };
  let proxy: TestProxy;

  before(async () => {
    backend = await slowBackend();
    proxy = await startProxy({ backends: [{ id: 'slow', url: backend.url }], timeouts: { request: 300 } });
  });

  after(async () => {
    await proxy.close();
    await backend.close();
    await assertNoLeakedHandles();
  });

  it('a request that does not parse is answered after the one before it, not instead of it', async () => {
    const answer = await rawExchange(proxy.port, [
      'GET /first?ms=100 HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\0 / HTTP/1.1\r\n\r\n',
    ]);
    const { statuses, problem } = checkResponses(Buffer.from(answer.text, 'latin1'));
    assert.equal(problem, undefined);
    assert.deepEqual(statuses, [200, 400]);
    assert.ok(answer.text.includes('done /first?ms=100'), "answer.text.includes('done /first?ms=100')");
    assert.ok(answer.closed, 'answer.closed');
  });

  it('an upgrade behind a slow request gets its 101 after that response', async () => {
    const client = await rawClient(proxy.port);
    client.write(`GET /first?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n${upgradeHead('/ws', webSocketKey())}`);
    await client.until((c) => c.received.includes('101 Switching'), 'the 101');
    const { statuses } = checkResponses(client.received);
    assert.deepEqual(statuses, [200, 101]);
    client.end();
    await client.untilClosed();
  });

  it('a client that resets while its upgrade waits behind a slow response is simply gone', async () => {
    const client = await rawClient(proxy.port);
    client.write(`GET /first?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n${upgradeHead('/ws', webSocketKey())}`);
    await new Promise((r) => setTimeout(r, 50));
    client.reset();
    await client.untilClosed();
    await waitFor(() => proxy.proxy.connections.active === 0, { message: 'no live connection' });
    // The proxy is still fine.
    const answer = await rawExchange(proxy.port, ['GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    assert.equal(answer.status, 200);
  });

  it('a client that half-closes after pipelined requests leaves no request counted', async () => {
    const client = await rawClient(proxy.port);
    client.write('GET /a?ms=150 HTTP/1.1\r\nHost: x\r\n\r\nGET /b?ms=150 HTTP/1.1\r\nHost: x\r\n\r\n');
    client.end();
    await client.untilClosed();
    // Node drops the connection on the FIN; the queued second response never gets to close itself.
    await waitFor(() => proxy.proxy.connections.active === 0, {
      timeoutMs: 3000,
      message: `no live request (active ${proxy.proxy.connections.active})`,
    });
    assert.equal(proxy.proxy.pool.get('slow')!.active, 0);
  });

  it('the header deadline is not armed while a pipelined response is still coming', async () => {
    // timeouts.request is 300 ms; the second answer takes 600 ms and must not be cut by a 408.
    const answer = await rawExchange(proxy.port, [
      'GET /a?ms=0 HTTP/1.1\r\nHost: x\r\n\r\nGET /b?ms=600 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    ]);
    const { statuses, problem } = checkResponses(Buffer.from(answer.text, 'latin1'));
    assert.equal(problem, undefined);
    assert.deepEqual(statuses, [200, 200]);
    assert.ok(answer.text.includes('done /b?ms=600'), "answer.text.includes('done /b?ms=600')");
  });
});
