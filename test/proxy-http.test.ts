import assert from 'node:assert/strict';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { CloseInfo } from '@wslb/core';
import roundRobin from '@wslb/round-robin';
import {
  type EchoBackend,
  type RawAnswer,
  type TestProxy,
  assertNoLeakedHandles,
  createCleanup,
  readAnswer,
  startEchoBackends,
  startProxy,
} from '@wslb/testing';
import { rawExchange } from './helpers/raw.js';
import { deadPort } from './helpers/servers.js';

type Answer = RawAnswer;

function send(
  port: number,
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
  agent: Agent | false = false,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, headers, agent, maxHeaderSize: 65536 },
      (res) => {
        readAnswer(res).then(resolve, reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('plain HTTP through createProxy', { timeout: 60_000 }, () => {
  let backends: EchoBackend[];
  let proxy: TestProxy;

  before(async () => {
    backends = await startEchoBackends(3);
    proxy = await startProxy({
      backends: backends.map((b) => ({ id: b.id, url: b.url.replace('ws:', 'http:') })),
      plugins: [roundRobin()],
    });
  });

  after(async () => {
    await proxy.close();
    await Promise.all(backends.map((b) => b.close()));
    await assertNoLeakedHandles();
  });

  it('proxies GET with path, query and forwarding headers', async () => {
    const answer = await send(proxy.port, 'GET', '/pages/index.html?lang=de');
    assert.equal(answer.status, 200);
    const echoed = JSON.parse(answer.body) as {
      backend: string;
      url: string;
      method: string;
      headers: Record<string, string>;
    };
    assert.equal(echoed.url, '/pages/index.html?lang=de');
    assert.equal(echoed.method, 'GET');
    assert.equal(echoed.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echoed.headers['x-forwarded-proto'], 'http');
    assert.equal(answer.headers['x-backend'], echoed.backend);
  });

  it('proxies POST bodies both ways (256 KiB)', async () => {
    const body = 'x'.repeat(256 * 1024);
    const answer = await send(proxy.port, 'POST', '/upload', body, { 'content-type': 'text/plain' });
    assert.equal(answer.status, 200);
    const echoed = JSON.parse(answer.body) as { body: string; method: string };
    assert.equal(echoed.method, 'POST');
    assert.equal(echoed.body.length, body.length);
    assert.equal(echoed.body, body);
  });

  it('spreads requests round-robin, one context per request', async () => {
    const seen: Record<string, number> = {};
    for (let i = 0; i < 9; i++) {
      const answer = await send(proxy.port, 'GET', '/rr');
      const id = String(answer.headers['x-backend']);
      seen[id] = (seen[id] ?? 0) + 1;
    }
    assert.deepEqual(seen, { b1: 3, b2: 3, b3: 3 });
  });

  it('strips hop-by-hop headers towards the backend', async () => {
    const answer = await send(proxy.port, 'GET', '/hop', undefined, {
      connection: 'keep-alive, x-secret-hop',
      'x-secret-hop': 'should not pass',
      'proxy-authorization': 'Basic abc',
    });
    const echoed = JSON.parse(answer.body) as { headers: Record<string, string> };
    assert.equal(echoed.headers['x-secret-hop'], undefined);
    assert.equal(echoed.headers['proxy-authorization'], undefined);
  });

  it('answers 502 when the only backend is dead, with a short text body', async () => {
    const dead = await startProxy({
      backends: [{ id: 'dead', url: `http://127.0.0.1:${await deadPort()}` }],
    });
    try {
      const answer = await send(dead.port, 'GET', '/');
      assert.equal(answer.status, 502);
      assert.match(answer.body, /backend/i);
      assert.doesNotMatch(answer.body, /at .*\.js:\d+/);
    } finally {
      await dead.close();
    }
  });
});

describe('plain HTTP limits and accounting', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  let port = 0;
  let received = 0;

  before(async () => {
    // Answers with an X-Big header of ?size= bytes and says how many body bytes it read.
    const server = createServer((req, res) => {
      let length = 0;
      req.on('data', (chunk: Buffer) => (length += chunk.length));
      req.on('end', () => {
        received = length;
        const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('size') ?? 0);
        res.writeHead(200, { 'x-big': 'b'.repeat(size), 'content-type': 'text/plain' });
        res.end(`read ${length}`);
      });
    });
    server.maxHeadersCount = 0;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    cleanup.defer(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
  });

  after(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  const proxyWith = async (headerSize: number) => {
    const proxy = await startProxy({
      backends: [{ id: 'big', url: `http://127.0.0.1:${port}` }],
      limits: { headerSize },
    });
    cleanup.add(proxy);
    const closes: CloseInfo[] = [];
    proxy.proxy.hooks.close.tap('test', (_ctx, info) => closes.push(info));
    return { proxy, closes };
  };

  it("answers 502 for a backend's response headers over limits.headerSize, and relays those under it", async () => {
    const small = await proxyWith(2048);
    const over = await send(small.proxy.port, 'GET', '/?size=3000');
    assert.equal(over.status, 502);
    assert.equal(small.closes.at(-1)?.error?.code, 'WSLB_ERR_BACKEND_HEADERS_TOO_LARGE');
    assert.equal((await send(small.proxy.port, 'GET', '/?size=500')).status, 200);

    // Above Node's own 16 KiB default: the configured limit is the one that counts.
    const large = await proxyWith(32768);
    const under = await send(large.proxy.port, 'GET', '/?size=20000');
    assert.equal(under.status, 200);
    assert.equal(String(under.headers['x-big']).length, 20000);
  });

  it("counts each request's bytes in and out, head and body, also on a keep-alive connection", async () => {
    const { proxy, closes } = await proxyWith(16384);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.defer(() => agent.destroy());
    const body = Buffer.alloc(100_000, 'p');
    const posted = await send(proxy.port, 'POST', '/upload', body, {}, agent);
    assert.equal(posted.body, 'read 100000');
    assert.equal(received, 100_000);
    const got = await send(proxy.port, 'GET', '/second', undefined, {}, agent);
    assert.equal(got.status, 200);
    assert.equal(closes.length, 2);
    const [post, get] = closes as [CloseInfo, CloseInfo];
    assert.ok(
      post.bytesIn > 100_000 && post.bytesIn < 100_400,
      `the POST's head and 100000-byte body: ${post.bytesIn}`,
    );
    assert.ok(post.bytesOut > 'read 100000'.length, `the POST's response: ${post.bytesOut}`);
    assert.ok(get.bytesIn > 20 && get.bytesIn < 400, `the GET's head alone: ${get.bytesIn}`);
    assert.ok(get.bytesOut > 0, `the GET's response: ${get.bytesOut}`);
  });

  it('refuses two Host lines with 400, counting the answer as bytes out', async () => {
    const { proxy, closes } = await proxyWith(16384);
    const refused = await rawExchange(proxy.port, [
      'GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n',
    ]);
    assert.equal(refused.status, 400);
    assert.ok(refused.closed, 'the connection is closed');
    const info = closes.at(-1)!;
    assert.equal(info.reason, 'rejected');
    assert.equal(info.error?.message, 'Duplicate Host header');
    assert.equal(info.bytesOut, Buffer.byteLength(refused.text), 'the 400 it wrote');
  });
});
