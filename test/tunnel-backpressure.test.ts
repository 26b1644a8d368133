import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import roundRobin from '@wslb/round-robin';
import {
  type TestProxy,
  assertNoLeakedHandles,
  closeAll,
  openClient,
  startEchoBackends,
  startProxy,
} from '@wslb/testing';
import type WebSocket from 'ws';

const SIZE = 64 * 1024;
/** 16 MiB: more than loopback socket buffers absorb, so the proxy's writes to a stalled client queue. */
const STALLED_MESSAGES = 256;
const FLOWING_MESSAGES = 64;

function digest(parts: readonly Buffer[]): string {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  return hash.digest('hex');
}

/** Sends the messages at once; resolves with what came back, in order. */
function echoAll(ws: WebSocket, sent: Buffer[]): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    ws.on('message', (data: Buffer) => {
      got.push(data);
      if (got.length === sent.length) resolve(got);
    });
    ws.once('error', reject);
    for (const m of sent) ws.send(m);
  });
}

/*
 * A client that stops reading makes the proxy's writes to it queue and its backend pause; the
 * bytes must all arrive, in order, once it reads again, while another tunnel keeps flowing.
 */
describe('tunnel: backpressure with a stalled client', { timeout: 60_000 }, () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
    await assertNoLeakedHandles();
  });

  it('delivers every byte intact to a stalled client and a flowing one at the same time', async () => {
    const backends = await startEchoBackends(2);
    cleanup.push(async () => void (await Promise.all(backends.map((b) => b.close()))));
    const proxy: TestProxy = await startProxy({
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      plugins: [roundRobin()],
    });
    cleanup.push(() => proxy.close());

    const stalled = await openClient(proxy.url);
    const flowing = await openClient(proxy.url);
    const socket = (stalled.ws as unknown as { _socket: Socket })._socket;
    const sentA = Array.from({ length: STALLED_MESSAGES }, () => randomBytes(SIZE));
    const sentB = Array.from({ length: FLOWING_MESSAGES }, () => randomBytes(SIZE));

    // The stalled client reads nothing for a while: the proxy's writes to it queue up, and
    // meanwhile the other tunnel's backend reads keep coming.
    socket.pause();
    const a = echoAll(stalled.ws, sentA);
    await new Promise((r) => setTimeout(r, 500));
    const gotB = await echoAll(flowing.ws, sentB);
    socket.resume();
    const gotA = await a;

    assert.equal(digest(gotB), digest(sentB), 'flowing client got different bytes');
    assert.equal(gotA.length, STALLED_MESSAGES);
    gotA.forEach((m, i) => assert.ok(m.equals(sentA[i]!), `stalled client: message ${i} differs`));
    await closeAll([stalled, flowing]);
  });
});
