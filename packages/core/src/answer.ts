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

/** How long a closing socket may stay silent before it is cut. */
const LINGER_IDLE_MS = 500;
/**
 * The longest a closing socket is read and drained, whatever its peer keeps sending: by then the
 * answer has long reached a peer that reads, and one that keeps writing must not hold an fd.
 */
const LINGER_MAX_MS = 1000;

const kLingering = Symbol('wslb.lingering');

type LingeringSocket = Duplex & { [kLingering]?: true };

/** Whether `closeAfterAnswer` is already closing this socket. */
export function isLingering(socket: Duplex): boolean {
  return (socket as LingeringSocket)[kLingering] === true;
}

function discard(): void {}

/**
 * Ends a socket after the answer already written to it, nginx's lingering close: the FIN goes
 * out after the answer and what the peer still sends is read and dropped until it closes its side,
 * stays silent for half a second, or a second went by. Closing with unread bytes would send a reset instead, and
 * the peer's kernel drops an answer it has not read yet when a reset arrives: a client that was
 * still sending (a request body, pipelined requests, a header too large) would never see its
 * status.
 */
export function closeAfterAnswer(socket: Duplex): void {
  const lingering = socket as LingeringSocket;
  if (lingering[kLingering]) return;
  lingering[kLingering] = true;
  if (!socket.writableEnded) socket.end();
  const deadline = Date.now() + LINGER_MAX_MS;
  const cut = (): void => {
    socket.destroy();
  };
  // Also the bound for a peer that never reads the answer, so the write never finishes.
  const timer = setTimeout(cut, LINGER_IDLE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('end', cut);
  socket.once('finish', () => {
    if (socket.readableEnded) {
      cut();
      return;
    }
    // The HTTP parser's own reader would answer every later chunk with another parse error.
    socket.removeAllListeners('data');
    socket.on('data', () => {
      if (Date.now() < deadline) timer.refresh();
    });
    socket.resume();
  });
  socket.on('error', discard);
}

/**
 * Writes the proxy's own short answer on a raw socket and closes it once written (see
 * `closeAfterAnswer`). The body is a line of text, never a stack.
 */
export function writeAnswer(
  socket: Duplex,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  if (socket.destroyed || isLingering(socket)) return;
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
  socket.write(head + body);
  closeAfterAnswer(socket);
}
