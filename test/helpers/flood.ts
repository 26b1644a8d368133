import { type Hash, createHash } from 'node:crypto';
import type { Socket } from 'node:net';

/**
 * Writes `total` bytes as fast as the socket takes them (honouring backpressure), hashing what
 * it wrote, then ends. `sent` tells how far it got: a writer stuck on a full pipe stops growing.
 */
export class Flood {
  readonly total: number;
  sent = 0;
  readonly #hash: Hash = createHash('sha256');
  readonly #socket: Socket;
  #seq = 0;
  readonly done: Promise<void>;
  #resolve!: () => void;

  constructor(socket: Socket, total: number) {
    this.#socket = socket;
    this.total = total;
    this.done = new Promise((resolve) => (this.#resolve = resolve));
  }

  start(): void {
    this.#pump();
  }

  digest(): string {
    return this.#hash.copy().digest('hex');
  }

  /** Resolves once `sent` did not move for `quietMs` (the pipe is full), or when all is sent. */
  async stalled(quietMs = 400, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = -1;
    let since = Date.now();
    while (this.sent < this.total) {
      if (this.sent !== last) {
        last = this.sent;
        since = Date.now();
      } else if (Date.now() - since >= quietMs) return;
      if (Date.now() > deadline) throw new Error(`the flood never stalled (sent ${this.sent})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  #pump = (): void => {
    while (this.sent < this.total && !this.#socket.destroyed) {
      // 64 KiB chunks with a running counter, so loss or reordering changes the digest.
      const chunk = Buffer.alloc(Math.min(65536, this.total - this.sent), this.#seq++ & 0xff);
      chunk.writeUInt32BE(this.#seq, 0);
      this.#hash.update(chunk);
      this.sent += chunk.length;
      if (!this.#socket.write(chunk)) {
        this.#socket.once('drain', this.#pump);
        return;
      }
    }
    this.#socket.end();
    this.#resolve();
  };
}

/** Counts and hashes what a socket receives after `skip` bytes (e.g. a response head). */
export class Sink {
  received = 0;
  readonly #hash: Hash = createHash('sha256');
  readonly ended: Promise<void>;

  constructor(socket: Socket, first: Buffer = Buffer.alloc(0)) {
    if (first.length > 0) this.#take(first);
    socket.on('data', (chunk: Buffer) => this.#take(chunk));
    this.ended = new Promise((resolve) => socket.once('end', () => resolve()));
  }

  digest(): string {
    return this.#hash.copy().digest('hex');
  }

  #take(chunk: Buffer): void {
    this.received += chunk.length;
    this.#hash.update(chunk);
  }
}
