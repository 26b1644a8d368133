import assert from 'node:assert/strict';
import { type Socket, connect } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import {
  assertNoLeakedHandles,
  closeAll,
  closed,
  createCleanup,
  openClient,
  roundTrip,
  startProxy,
  waitFor,
  webSocketKey,
} from '@wslb/testing';

/** A WebSocket echo backend that records the close code of every connection it loses. */
async function recordingBackend(): Promise<{ url: string; codes: number[]; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const codes: number[] = [];
  wss.on('connection', (ws) => {
    ws.on('message', (data, binary) => ws.send(data, { binary }));
    ws.on('close', (code) => codes.push(code));
    ws.on('error', () => {});
  });
  const { port } = wss.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}`,
    codes,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** A raw client through the proxy: upgrades, then resolves with the socket and what it received. */
function rawUpgrade(
  port: number,
): Promise<{ socket: Socket; received: () => Buffer; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let upgraded = false;
    const ended = new Promise<void>((done) => socket.once('close', () => done()));
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (!upgraded && Buffer.concat(chunks).includes('\r\n\r\n')) {
        upgraded = true;
        if (!Buffer.concat(chunks).toString('latin1').startsWith('HTTP/1.1 101')) reject(new Error('no 101'));
        const all = Buffer.concat(chunks);
        chunks.length = 0;
        chunks.push(all.subarray(all.indexOf('\r\n\r\n') + 4));
        resolve({ socket, received: () => Buffer.concat(chunks), closed: ended });
      }
    });
    socket.once('connect', () =>
      socket.write(
        `GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          `Sec-WebSocket-Key: ${webSocketKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
  });
}

describe('tunnels the proxy closes itself', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('past the drain deadline, both sides get a close frame 1001 (going away), not a reset', async () => {
    const backend = cleanup.add(await recordingBackend());
    const proxy = await startProxy({ backends: [{ id: 'b1', url: backend.url }] });
    cleanup.defer(() => proxy.close());
    const clients = await Promise.all([openClient(proxy.url), openClient(proxy.url)]);
    for (const c of clients) assert.equal((await roundTrip(c.ws, 'before')).data.toString(), 'before');
    const codes = clients.map((c) => closed(c.ws));
    await proxy.proxy.close({ drain: 200 });
    assert.deepEqual(
      (await Promise.all(codes)).map((c) => c.code),
      [1001, 1001],
    );
    await waitFor(() => backend.codes.length === 2, { message: 'the backend saw both closes' });
    assert.deepEqual(backend.codes, [1001, 1001]);
  });

  it('never cuts a frame in two: a direction stopped mid-frame gets no close frame, the other one does', async () => {
    const backend = cleanup.add(await recordingBackend());
    const proxy = await startProxy({ backends: [{ id: 'b1', url: backend.url }] });
    cleanup.defer(() => proxy.close());
    const raw = await rawUpgrade(proxy.port);
    cleanup.defer(async () => raw.socket.destroy());
    // A masked binary frame announcing 100 bytes, of which 10 are sent.
    const readBefore = proxy.proxy.liveTunnels()[0]!.bytesIn;
    raw.socket.write(Buffer.concat([Buffer.from([0x82, 0x80 | 100, 1, 2, 3, 4]), Buffer.alloc(10)]));
    await waitFor(() => proxy.proxy.liveTunnels()[0]!.bytesIn === readBefore + 16, {
      message: 'the proxy read the partial frame',
    });
    await proxy.proxy.close({ drain: 100 });
    await raw.closed;
    // Towards the client the stream stood between frames: it ends with the close frame.
    assert.deepEqual([...raw.received()], [0x88, 0x02, 0x03, 0xe9]);
    // Towards the backend a frame was open: no close frame went in the middle of it.
    await waitFor(() => backend.codes.length === 1, { message: 'the backend lost the connection' });
    assert.deepEqual(backend.codes, [1006]);
  });

  it('an idle timeout closes with 1001 too', async () => {
    const backend = cleanup.add(await recordingBackend());
    const proxy = await startProxy({ backends: [{ id: 'b1', url: backend.url }], timeouts: { idle: 300 } });
    cleanup.defer(() => proxy.close());
    const client = await openClient(proxy.url);
    assert.equal((await closed(client.ws, 5000)).code, 1001);
    await waitFor(() => backend.codes.length === 1, { message: 'the backend saw the close' });
    assert.deepEqual(backend.codes, [1001]);
  });

  it('a reload that removes a backend lets its tunnels live until timeouts.removedBackend, then closes them with 1001', async () => {
    const kept = cleanup.add(await recordingBackend());
    const removed = cleanup.add(await recordingBackend());
    const backends = [
      { id: 'kept', url: kept.url },
      { id: 'removed', url: removed.url },
    ];
    const proxy = await startProxy({ backends });
    cleanup.defer(() => proxy.close());
    const onKept = await openClient(proxy.url, proxy.pinned('kept'));
    const onRemoved = await openClient(proxy.url, proxy.pinned('removed'));
    const removedClosed = closed(onRemoved.ws, 5000);
    const reloadedAt = Date.now();
    await proxy.proxy.reload({
      ...proxy.proxy.config,
      backends: [backends[0]!],
      timeouts: { ...proxy.proxy.config.timeouts, removedBackend: 400 },
    });
    // Still served by the removed backend until the deadline.
    assert.equal((await roundTrip(onRemoved.ws, 'still here')).data.toString(), 'still here');
    assert.equal((await removedClosed).code, 1001);
    assert.ok(Date.now() - reloadedAt >= 350, `closed after ${Date.now() - reloadedAt} ms`);
    await waitFor(() => removed.codes.length === 1, { message: 'the removed backend saw the close' });
    assert.deepEqual(removed.codes, [1001]);
    // The other backend's tunnel is untouched.
    assert.equal((await roundTrip(onKept.ws, 'kept')).data.toString(), 'kept');
    await closeAll([onKept]);
  });
});
