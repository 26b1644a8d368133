/**
 * One load generator process. The harness starts several and drives them over IPC so that the
 * measuring window is the same for all: start the load, `mark` (counters reset, samples kept from
 * now), `stop` (results back). Client sockets are spread over source addresses in 127.0.0.0/8 so
 * that ephemeral ports and TIME_WAIT never limit later targets of a run.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import type { GenCommand, GenReply, GenResult } from './protocol.js';

/** The RFC 6455 sample key and its accept value: the generator checks every 101 it gets. */
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT = /\r\nsec-websocket-accept: *s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i;
/** A masked close frame, code 1000: the client asks, the server answers and closes TCP first. */
const CLOSE_FRAME = Buffer.from([0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2]);
const CONNECTION_TIMEOUT_MS = 15_000;

class Samples {
  #data = new Float64Array(1 << 16);
  length = 0;
  push(value: number): void {
    if (this.length === this.#data.length) {
      const bigger = new Float64Array(this.#data.length * 2);
      bigger.set(this.#data);
      this.#data = bigger;
    }
    this.#data[this.length++] = value;
  }
  take(): Float64Array {
    return this.#data.slice(0, this.length);
  }
}

let sources: string[] = ['127.0.0.1'];
let nextSource = 0;
function source(): string {
  const address = sources[nextSource]!;
  nextSource = (nextSource + 1) % sources.length;
  return address;
}

// What the current window counted.
let measuring = false;
let markedAt = 0;
let count = 0;
let bytes = 0;
let errors = 0;
let firstError: string | undefined;
let samples = new Samples();
let cpuAtMark = process.cpuUsage();

function fail(message: string): void {
  errors++;
  firstError ??= message;
}

function resetWindow(): void {
  measuring = true;
  markedAt = performance.now();
  count = 0;
  bytes = 0;
  errors = 0;
  firstError = undefined;
  samples = new Samples();
  cpuAtMark = process.cpuUsage();
}

function windowResult(): GenResult {
  const cpu = process.cpuUsage(cpuAtMark);
  measuring = false;
  return {
    elapsedMs: performance.now() - markedAt,
    count,
    bytes,
    errors,
    firstError,
    samples: samples.take(),
    cpuMicros: cpu.user + cpu.system,
  };
}

// ---- Handshakes: connect, upgrade, close; latency from connect() to the 101's last header byte.

let handshaking = false;
let liveLoops = 0;
let loopsDone: (() => void) | undefined;

function handshakeOnce(port: number, request: string): void {
  liveLoops++;
  const started = performance.now();
  let head = '';
  let upgraded = false;
  const socket: Socket = connect({ host: '127.0.0.1', port, localAddress: source() });
  socket.setNoDelay(true);
  socket.setTimeout(CONNECTION_TIMEOUT_MS);
  socket.on('connect', () => socket.write(request));
  socket.on('timeout', () => {
    if (measuring) fail('handshake: timed out');
    socket.destroy();
  });
  socket.on('data', (chunk: Buffer) => {
    if (upgraded) return;
    head += chunk.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    if (!head.startsWith('HTTP/1.1 101') || !ACCEPT.test(head.slice(0, end + 2))) {
      if (measuring) fail(`handshake: ${head.slice(0, head.indexOf('\r\n'))}`);
      socket.destroy();
      return;
    }
    upgraded = true;
    if (measuring) {
      count++;
      samples.push(performance.now() - started);
    }
    socket.write(CLOSE_FRAME);
  });
  socket.on('error', (err) => {
    if (measuring) fail(`handshake: ${err.message}`);
  });
  socket.on('close', () => {
    liveLoops--;
    if (handshaking) handshakeOnce(port, request);
    else if (liveLoops === 0) loopsDone?.();
  });
}

function startHandshakes(ports: readonly number[], concurrency: number): void {
  handshaking = true;
  const requests = ports.map(
    (port) =>
      `GET /bench HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  for (let i = 0; i < concurrency; i++) handshakeOnce(ports[i % ports.length]!, requests[i % ports.length]!);
}

function settleHandshakes(): Promise<void> {
  handshaking = false;
  if (liveLoops === 0) return Promise.resolve();
  return new Promise((resolve) => (loopsDone = resolve));
}

// ---- Open WebSockets: idle tunnels, echo and bulk.

interface Conn {
  ws: WebSocket;
  inflight: number;
  sentAt: number;
}

const conns: Conn[] = [];
let echoing = false;

function openOne(port: number): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/bench`, {
      perMessageDeflate: false,
      localAddress: source(),
      handshakeTimeout: CONNECTION_TIMEOUT_MS,
      maxPayload: 64 * 1024 * 1024,
    });
    ws.binaryType = 'nodebuffer';
    ws.once('open', () => {
      conns.push({ ws, inflight: 0, sentAt: 0 });
      resolve();
    });
    ws.on('error', (err) => {
      fail(`connect: ${err.message}`);
      resolve();
    });
  });
}

async function openConnections(ports: readonly number[], total: number, parallel: number): Promise<number> {
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < total) {
      const i = started++;
      await openOne(ports[i % ports.length]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, total) }, worker));
  return conns.length;
}

function startEcho(size: number, window: number): void {
  const payload = randomBytes(size);
  echoing = true;
  for (const c of conns) {
    const send = (): void => {
      c.inflight++;
      c.sentAt = performance.now();
      c.ws.send(payload, { binary: true });
    };
    c.ws.on('message', (data: Buffer) => {
      c.inflight--;
      if (data.length !== size) fail(`echo: ${data.length} bytes back for ${size}`);
      if (measuring) {
        count++;
        bytes += data.length;
        if (window === 1) samples.push(performance.now() - c.sentAt);
      }
      if (echoing) while (c.inflight < window) send();
    });
    while (c.inflight < window) send();
  }
}

/** Stops sending and waits until every echo in flight is back (or the connection closed). */
function settleEcho(): Promise<void> {
  echoing = false;
  return new Promise((resolve) => {
    const deadline = Date.now() + CONNECTION_TIMEOUT_MS;
    const check = (): void => {
      if (conns.every((c) => c.inflight === 0 || c.ws.readyState !== WebSocket.OPEN) || Date.now() > deadline)
        resolve();
      else setTimeout(check, 20);
    };
    check();
  });
}

async function closeConnections(): Promise<void> {
  const all = conns.splice(0);
  await Promise.all(
    all.map(
      (c) =>
        new Promise<void>((resolve) => {
          c.ws.removeAllListeners('message');
          if (c.ws.readyState === WebSocket.CLOSED) return resolve();
          const timer = setTimeout(() => {
            c.ws.terminate();
            resolve();
          }, CONNECTION_TIMEOUT_MS);
          c.ws.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          c.ws.close(1000);
        }),
    ),
  );
}

async function handle(cmd: GenCommand): Promise<GenReply['value']> {
  switch (cmd.cmd) {
    case 'sources':
      sources = cmd.sources;
      return undefined;
    case 'handshakes':
      startHandshakes(cmd.ports, cmd.concurrency);
      return undefined;
    case 'settle-handshakes':
      await settleHandshakes();
      return undefined;
    case 'open':
      return { opened: await openConnections(cmd.ports, cmd.count, cmd.parallel), errors };
    case 'echo':
      startEcho(cmd.size, cmd.window);
      return undefined;
    case 'settle-echo':
      await settleEcho();
      return undefined;
    case 'close':
      await closeConnections();
      return undefined;
    case 'mark':
      resetWindow();
      return undefined;
    case 'stop':
      return windowResult();
  }
}

process.on('message', (message: { id: number; cmd: GenCommand }) => {
  handle(message.cmd).then(
    (value) => process.send!({ id: message.id, value } satisfies GenReply),
    (err: unknown) => process.send!({ id: message.id, error: String(err) } satisfies GenReply),
  );
});
process.on('disconnect', () => process.exit(0));
