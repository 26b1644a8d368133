import { connect, type Socket } from 'node:net';

export interface RawResult {
  /** Everything the server sent before closing (or the timeout). */
  text: string;
  status: number;
  /** Whether the server closed the connection. */
  closed: boolean;
}

/**
 * Writes raw bytes (in pieces, with pauses when asked) to a port and collects the answer until
 * the server closes or `timeoutMs` passes.
 */
export function rawExchange(
  port: number,
  pieces: Array<string | Buffer>,
  { delayMs = 0, timeoutMs = 5000 }: { delayMs?: number; timeoutMs?: number } = {},
): Promise<RawResult> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : 0, closed });
    };
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.once('connect', async () => {
      for (const piece of pieces) {
        if (socket.destroyed) return;
        socket.write(piece);
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      }
    });
  });
}
