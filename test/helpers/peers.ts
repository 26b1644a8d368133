import { createHash } from 'node:crypto';
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';

/*
 * Raw TCP peers for fault injection on both sides of the proxy. A peer can be "stubborn": it
 * ignores a FIN (half-open, like a careless server) and keeps writing a byte every few ms, so it
 * only goes away when the proxy really destroyed its socket (the write then meets a reset). An
 * `end()` where a `destroy()` belongs leaves such a peer open, and the test waiting for it fails.
 */

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const HEAD_END = Buffer.from('\r\n\r\n');

export interface PeerOptions {
  /** Ignore the other side's FIN and probe with writes until the connection is gone. */
  stubborn?: boolean;
}

export interface ParsedHead {
  /** The first line (request or status line). */
  line: string;
  status: number;
  headers: Record<string, string>;
  /** Bytes after the head. */
  rest: Buffer;
}

export function parseHead(buffer: Buffer): ParsedHead | undefined {
  const end = buffer.indexOf(HEAD_END);
  if (end < 0) return undefined;
  const lines = buffer.toString('latin1', 0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  return { line: lines[0] ?? '', status: m ? Number(m[1]) : 0, headers, rest: buffer.subarray(end + 4) };
}

/** One end of a raw TCP connection with everything it received recorded. */
export class RawPeer {
  readonly socket: Socket;
  readonly #chunks: Buffer[] = [];
  #length = 0;
  /** The other side sent its FIN. */
  ended = false;
  closed = false;
  error: Error | undefined = undefined;
  readonly whenClosed: Promise<void>;
  #probe: NodeJS.Timeout | undefined = undefined;
  #waiters = new Set<() => void>();

  constructor(socket: Socket, options: PeerOptions = {}) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#length += chunk.length;
      this.#notify();
    });
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('end', () => {
      this.ended = true;
      if (options.stubborn) this.#startProbe();
      this.#notify();
    });
    this.whenClosed = new Promise((resolve) => {
      socket.once('close', () => {
        this.closed = true;
        if (this.#probe) clearInterval(this.#probe);
        this.#notify();
        resolve();
      });
    });
  }

  /** Everything received so far. */
  get received(): Buffer {
    if (this.#chunks.length > 1) {
      const all = Buffer.concat(this.#chunks, this.#length);
      this.#chunks.length = 0;
      this.#chunks.push(all);
    }
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  get head(): ParsedHead | undefined {
    return parseHead(this.received);
  }

  write(data: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  /** Half-closes: sends a FIN, keeps reading. */
  end(): void {
    this.socket.end();
  }

  /** Aborts with a TCP reset. */
  reset(): void {
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Resolves once `check` holds for this peer, or rejects after `timeoutMs`. */
  until<T>(check: (peer: this) => T, what: string, timeoutMs = 5000): Promise<NonNullable<T>> {
    return new Promise((resolve, reject) => {
      const attempt = (): boolean => {
        const value = check(this);
        if (!value) return false;
        clearTimeout(timer);
        this.#waiters.delete(attempt);
        resolve(value as NonNullable<T>);
        return true;
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(attempt);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what} (received ${this.#length} bytes: ${JSON.stringify(this.received.toString('latin1').slice(0, 200))}, ended ${this.ended}, closed ${this.closed})`,
          ),
        );
      }, timeoutMs);
      if (!attempt()) this.#waiters.add(attempt);
    });
  }

  untilHead(timeoutMs?: number): Promise<ParsedHead> {
    return this.until((p) => p.head, 'a response head', timeoutMs);
  }

  untilClosed(timeoutMs?: number): Promise<boolean> {
    return this.until((p) => p.closed, 'the connection to close', timeoutMs);
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  #startProbe(): void {
    if (this.#probe || this.closed) return;
    // A destroyed peer answers these bytes with a reset; a half-closed one swallows them.
    this.#probe = setInterval(() => {
      if (!this.socket.destroyed && this.socket.writable) this.socket.write('.');
    }, 10);
  }
}

/** Connects a raw client to 127.0.0.1:port. */
export async function rawClient(port: number, options: PeerOptions = {}): Promise<RawPeer> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const peer = new RawPeer(socket, options);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return peer;
}

export function webSocketAccept(key: string): string {
  return createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64');
}

/** A WebSocket upgrade request head. */
export function upgradeHead(path: string, key: string, extra: Record<string, string> = {}): string {
  let head = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
  for (const [name, value] of Object.entries(extra)) head += `${name}: ${value}\r\n`;
  return `${head}\r\n`;
}

/** The 101 a WebSocket server sends for a request head. */
export function switchingProtocols(requestHead: ParsedHead, extra = ''): string {
  const key = requestHead.headers['sec-websocket-key'] ?? '';
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${webSocketAccept(key)}\r\n${extra}\r\n`;
}

/** A single-frame WebSocket message (masked when sent by a client, as RFC 6455 requires). */
export function wsFrame(payload: string | Buffer, { opcode = 1, masked = false } = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header: number[] = [0x80 | opcode];
  const maskBit = masked ? 0x80 : 0;
  if (data.length < 126) header.push(maskBit | data.length);
  else if (data.length < 65536) header.push(maskBit | 126, data.length >> 8, data.length & 0xff);
  else {
    header.push(maskBit | 127, 0, 0, 0, 0);
    header.push((data.length >>> 24) & 0xff, (data.length >>> 16) & 0xff, (data.length >>> 8) & 0xff);
    header.push(data.length & 0xff);
  }
  if (!masked) return Buffer.concat([Buffer.from(header), data]);
  const mask = [0x12, 0x34, 0x56, 0x78];
  const body = Buffer.from(data.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from(header), Buffer.from(mask), body]);
}

export interface RawServer {
  port: number;
  url: string;
  /** Every connection accepted so far. */
  peers: RawPeer[];
  /** Connections not closed yet. */
  readonly open: number;
  /** Resolves with the n-th accepted connection (1-based) once it arrived. */
  accepted(n: number, timeoutMs?: number): Promise<RawPeer>;
  close(): Promise<void>;
}

/**
 * A raw TCP backend. `onPeer` drives each accepted connection (answer, reset, go silent...).
 * Sockets are half-open capable: a FIN from the proxy does not close them by itself.
 */
export async function rawServer(
  onPeer: (peer: RawPeer) => void | Promise<void>,
  options: PeerOptions & { host?: string } = {},
): Promise<RawServer> {
  const peers: RawPeer[] = [];
  const waiters = new Set<() => void>();
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    const peer = new RawPeer(socket, options);
    peers.push(peer);
    for (const w of [...waiters]) w();
    void Promise.resolve(onPeer(peer)).catch(() => peer.destroy());
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `ws://${host}:${port}`,
    peers,
    get open() {
      return peers.filter((p) => !p.closed).length;
    },
    accepted: (n, timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (peers.length < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(peers[n - 1]!);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`backend did not get connection #${n} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    close: async () => {
      for (const p of peers) p.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Waits for the upgrade request head a raw backend receives. */
export function requestHead(peer: RawPeer, timeoutMs?: number): Promise<ParsedHead> {
  return peer.until((p) => p.head, 'the upgrade request', timeoutMs);
}
