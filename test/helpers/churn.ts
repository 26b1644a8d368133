import { connect } from 'node:net';
import { Rng } from './fuzz.js';

/*
 * Connect/abort cycles: each opens a connection, gets it to some point of the request path and
 * aborts it with a TCP reset (no TIME_WAIT on the client side, so 100,000 of them fit in the
 * ephemeral port range; source addresses are spread over 127.0.0.0/8 as well).
 */
export const CYCLE_KINDS = [
  /** Reset right after the TCP handshake. */
  'connect',
  /** Half a request line, then the reset (the header deadline is running). */
  'partial-head',
  /** A whole upgrade request, reset before the answer (the proxy is dialing or handshaking). */
  'upgrade',
  /** Reset once the 101 arrived (a live tunnel). */
  'tunnel',
  /** A plain HTTP request, reset before the answer (the request is in flight to a backend). */
  'http',
] as const;

export type CycleKind = (typeof CYCLE_KINDS)[number];

const WEIGHTS: Record<CycleKind, number> = {
  connect: 40,
  'partial-head': 20,
  upgrade: 15,
  tunnel: 10,
  http: 15,
};

const UPGRADE =
  'GET /churn HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
const HTTP = 'GET /churn HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';

export function cycle(port: number, kind: CycleKind, localAddress: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    const abort = (): void => {
      if (!socket.destroyed) socket.resetAndDestroy();
    };
    // A cycle never hangs: whatever state it reached, it is cut after a second.
    const timer = setTimeout(abort, 1000);
    socket.on('error', () => {});
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('connect', () => {
      switch (kind) {
        case 'connect':
          abort();
          break;
        case 'partial-head':
          socket.write('GET /churn HTTP/1.1\r\nHost: 12', () => setImmediate(abort));
          break;
        case 'upgrade':
          socket.write(UPGRADE, () => setImmediate(abort));
          break;
        case 'http':
          socket.write(HTTP, () => setImmediate(abort));
          break;
        case 'tunnel':
          socket.write(UPGRADE);
          socket.on('data', (chunk: Buffer) => {
            if (chunk.includes('101 Switching')) abort();
          });
          break;
      }
    });
  });
}

/** Runs `count` cycles, `concurrency` at a time, with a seeded mix of kinds. */
export async function churn(
  port: number,
  count: number,
  { concurrency = 64, seed = 1 }: { concurrency?: number; seed?: number } = {},
): Promise<Record<CycleKind, number>> {
  const done = Object.fromEntries(CYCLE_KINDS.map((k) => [k, 0])) as Record<CycleKind, number>;
  const total = CYCLE_KINDS.reduce((n, k) => n + WEIGHTS[k], 0);
  let next = 0;
  const worker = async (w: number): Promise<void> => {
    const rng = new Rng(seed, w);
    const localAddress = `127.0.${1 + (w % 4)}.${1 + (w % 250)}`;
    while (next < count) {
      next++;
      let roll = rng.int(total);
      let kind: CycleKind = 'connect';
      for (const k of CYCLE_KINDS) {
        if (roll < WEIGHTS[k]) {
          kind = k;
          break;
        }
        roll -= WEIGHTS[k];
      }
      await cycle(port, kind, localAddress);
      done[kind]++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  return done;
}
