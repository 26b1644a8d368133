import assert from 'node:assert/strict';
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { createCleanup, type RunningWslb, assertNoLeakedHandles, runWslb, webSocketKey } from '@wslb/testing';
import { Flood, Sink } from './helpers/flood.js';
import { type ParsedHead, parseHead, switchingProtocols, upgradeHead } from './helpers/peers.js';
import { hasProcfs, mib, rssBytes } from './helpers/proc.js';

/*
 * Backpressure through the real binary: one side floods, the other stops reading. The proxy must
 * stop reading from the flooding side instead of buffering (its RSS stays flat and the flooding
 * writer gets stuck far short of its total), then deliver every byte in order once reading resumes.
 */
const TOTAL = 256 * 1024 * 1024;
/** What the kernel's socket buffers on the way may hold, with room to spare; far below TOTAL. */
const MAX_IN_FLIGHT = 64 * 1024 * 1024;
/** RSS growth allowed while the pipe is full (a proxy that buffered would grow by ~TOTAL). */
const MAX_RSS_GROWTH = 48 * 1024 * 1024;

/** Reads a head from a socket, then leaves it paused with the bytes after the head. */
function readHead(socket: Socket): Promise<{ head: ParsedHead; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const head = parseHead(buffered);
      if (!head) return;
      socket.off('data', onData);
      socket.pause();
      resolve({ head, rest: head.rest });
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

interface Tunnel {
  client: Socket;
  backend: Socket;
  clientRest: Buffer;
  backendRest: Buffer;
}

describe('backpressure through the binary', { timeout: 120_000, skip: !hasProcfs && 'needs /proc' }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  /** The binary in front of a raw backend; returns one tunnel with both ends paused. */
  async function tunnel(): Promise<{ wslb: RunningWslb; t: Tunnel }> {
    const accepted: Socket[] = [];
    const server: Server = createServer({ allowHalfOpen: true }, (s) => {
      accepted.push(s);
      s.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.defer(async () => {
      for (const s of accepted) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'flood', url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}` }],
      log: { level: 'info', access: false },
    });
    cleanup.defer(async () => {
      await wslb.stop();
    });
    const client = connect({ port: wslb.port, host: '127.0.0.1', allowHalfOpen: true });
    client.on('error', () => {});
    cleanup.defer(async () => {
      client.destroy();
    });
    await new Promise((resolve) => client.once('connect', resolve));
    const backendSide = new Promise<Socket>((resolve) => server.once('connection', resolve));
    client.write(upgradeHead('/flood', webSocketKey()));
    const backend = await backendSide;
    const request = await readHead(backend);
    backend.write(switchingProtocols(request.head));
    const answer = await readHead(client);
    assert.equal(answer.head.status, 101);
    return { wslb, t: { client, backend, clientRest: answer.rest, backendRest: request.rest } };
  }

  for (const direction of [
    'backend floods a client that stopped reading',
    'client floods a backend that stopped reading',
  ]) {
    it(`${direction}: memory stays flat, then every byte arrives in order`, async () => {
      const { wslb, t } = await tunnel();
      const pid = wslb.child.pid!;
      const backendFloods = direction.startsWith('backend');
      const [writer, reader, readerRest] = backendFloods
        ? [t.backend, t.client, t.clientRest]
        : [t.client, t.backend, t.backendRest];
      const rssBefore = rssBytes(pid);
      const flood = new Flood(writer, TOTAL);
      flood.start();
      await flood.stalled();
      const rssStalled = rssBytes(pid);
      const growth = rssStalled - rssBefore;
      const stalledAt = flood.sent;
      assert.ok(
        flood.sent < MAX_IN_FLIGHT,
        `the writer got ${mib(flood.sent)} of ${mib(TOTAL)} out before it stalled: the proxy kept reading`,
      );
      assert.ok(
        growth < MAX_RSS_GROWTH,
        `proxy RSS grew by ${mib(growth)} (${mib(rssBefore)} -> ${mib(rssStalled)})`,
      );

      // The reader wakes up: everything arrives, nothing lost, nothing reordered.
      const sink = new Sink(reader, readerRest);
      reader.resume();
      await flood.done;
      await sink.ended;
      assert.equal(sink.received, TOTAL);
      assert.equal(sink.digest(), flood.digest());
      assert.ok(rssBytes(pid) - rssBefore < MAX_RSS_GROWTH, 'memory stayed bounded during the transfer too');
      // The reader closes its side too: the tunnel ends cleanly.
      const closed = Promise.all([t.client, t.backend].map((s) => new Promise((r) => s.once('close', r))));
      reader.end();
      await closed;
      console.log(
        `# ${direction}: stalled after ${mib(stalledAt)}, proxy RSS ${mib(rssBefore)} -> ${mib(rssStalled)}`,
      );
    });
  }
});
