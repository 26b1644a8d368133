import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import roundRobin from '@wslb/round-robin';
import {
  type EchoBackend,
  type RawAnswer,
  type TestProxy,
  assertNoLeakedHandles,
  readAnswer,
  startEchoBackends,
  startProxy,
} from '@wslb/testing';
import { deadPort } from './helpers/servers.js';

type Answer = RawAnswer;

function send(
  port: number,
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      readAnswer(res).then(resolve, reject);
    });
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
