import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HeaderMap } from './hooks.js';

/** Serializes a response head; header names are written as given, values as is. */
export function responseHead(status: number, statusMessage: string, headers: HeaderMap): string {
  let head = `HTTP/1.1 ${status} ${statusMessage}\r\n`;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) head += `${name}: ${v}\r\n`;
    else head += `${name}: ${value}\r\n`;
  }
  return head + '\r\n';
}

/**
 * Writes the proxy's own short answer on a raw socket and closes it once written. The body is a
 * line of text, never a stack.
 */
export function writeAnswer(
  socket: Duplex,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  if (socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${message}\n`;
  const head = responseHead(status, STATUS_CODES[status] ?? 'Error', {
    connection: 'close',
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    ...headers,
  });
  socket.end(head + body);
  // end() flushes then half-closes; destroy() on finish frees the fd even if the peer keeps its side open.
  socket.once('finish', () => socket.destroy());
  // A peer that never reads must not pin the socket: give the answer a moment, then drop it.
  const timer = setTimeout(() => socket.destroy(), 2000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
