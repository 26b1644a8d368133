import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type EchoBackend,
  type TestProxy,
  assertNoLeakedHandles,
  startEchoBackend,
  startProxy,
} from '@wslb/testing';
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
