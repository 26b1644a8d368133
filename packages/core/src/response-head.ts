import type { Socket } from 'node:net';
import { WslbError } from './errors.js';
import type { HeaderMap } from './hooks.js';

export interface ParsedResponseHead {
  status: number;
  statusMessage: string;
  headers: HeaderMap;
  /** Bytes that arrived after the head (frames after a 101, or the start of a body). */
  rest: Buffer;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

export function parseResponseHead(text: string): Omit<ParsedResponseHead, 'rest'> {
  const lines = text.split('\r\n');
  const statusLine = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
  if (!statusLine)
    throw new WslbError('WSLB_ERR_BACKEND_BAD_RESPONSE', 'Backend sent an invalid status line');
  const headers: HeaderMap = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) {
      throw new WslbError('WSLB_ERR_BACKEND_BAD_RESPONSE', 'Backend sent an invalid header line');
    }
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    const existing = headers[name];
    if (existing === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(existing)) existing.push(value);
    else headers[name] = `${existing}, ${value}`;
  }
  return { status: Number(statusLine[1]), statusMessage: statusLine[2] ?? '', headers };
}

/**
 * Reads a backend's response head from a raw socket. Resolves with what follows the head too;
 * the socket is left paused with no listeners of ours, so the caller decides what reads next.
 */
export function readResponseHead(
  socket: Socket,
  limit: number,
  timeoutMs: number,
): Promise<ParsedResponseHead> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer | undefined;
    let timer: NodeJS.Timeout | undefined;
    const done = (err: WslbError | undefined, head?: ParsedResponseHead): void => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      if (timer) clearTimeout(timer);
      socket.pause();
      if (err) reject(err);
      else resolve(head!);
    };
    const onData = (chunk: Buffer): void => {
      const searchFrom = buffered ? Math.max(0, buffered.length - 3) : 0;
      buffered = buffered ? Buffer.concat([buffered, chunk]) : chunk;
      const end = buffered.indexOf(CRLFCRLF, searchFrom);
      if (end < 0) {
        if (buffered.length > limit) {
          done(new WslbError('WSLB_ERR_BACKEND_HEADERS_TOO_LARGE'));
        }
        return;
      }
      if (end > limit) {
        done(new WslbError('WSLB_ERR_BACKEND_HEADERS_TOO_LARGE'));
        return;
      }
      try {
        const parsed = parseResponseHead(buffered.toString('latin1', 0, end));
        done(undefined, { ...parsed, rest: buffered.subarray(end + 4) });
      } catch (err) {
        done(err as WslbError);
      }
    };
    const onEnd = (): void => done(new WslbError('WSLB_ERR_BACKEND_CLOSED'));
    const onError = (err: Error): void =>
      done(
        new WslbError('WSLB_ERR_BACKEND_CLOSED', `Backend failed before answering: ${err.message}`, {
          cause: err,
        }),
      );
    if (timeoutMs > 0) timer = setTimeout(() => done(new WslbError('WSLB_ERR_HANDSHAKE_TIMEOUT')), timeoutMs);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
    socket.resume();
  });
}

/**
 * Finds where an HTTP/1.1 response body ends when it is relayed raw (framing left intact):
 * Content-Length, chunked, or "until the backend closes".
 */
export class BodyFramer {
  #remaining: number;
  readonly #chunked: boolean;
  #state: 'size' | 'ext' | 'size-lf' | 'data' | 'data-cr' | 'data-lf' | 'trailer' | 'trailer-lf' | 'done' =
    'size';
  #size = 0;
  #sawSizeDigit = false;
  #trailerLineEmpty = true;

  constructor(status: number, headers: HeaderMap, isHeadRequest = false) {
    const te = headers['transfer-encoding'];
    this.#chunked = typeof te === 'string' && /(^|,)\s*chunked\s*$/i.test(te);
    const length = headers['content-length'];
    if (isHeadRequest || status === 204 || status === 304 || (status >= 100 && status < 200))
      this.#remaining = 0;
    else if (this.#chunked) this.#remaining = -1;
    else if (typeof length === 'string' && /^\d+$/.test(length)) this.#remaining = Number(length);
    else this.#remaining = Infinity;
    if (!this.#chunked && this.#remaining === 0) this.#state = 'done';
  }

  get done(): boolean {
    return this.#chunked ? this.#state === 'done' : this.#remaining === 0;
  }

  /** Consumes bytes; returns how many of them belong to the body (the rest are past its end). */
  consume(chunk: Buffer): number {
    if (!this.#chunked) {
      if (this.#remaining === Infinity) return chunk.length;
      const n = Math.min(this.#remaining, chunk.length);
      this.#remaining -= n;
      return n;
    }
    let i = 0;
    while (i < chunk.length && this.#state !== 'done') {
      const c = chunk[i]!;
      switch (this.#state) {
        case 'size': {
          const digit =
            c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (digit >= 0) {
            this.#size = this.#size * 16 + digit;
            this.#sawSizeDigit = true;
          } else if (c === 13) this.#state = 'size-lf';
          else if (c === 59 || c === 32 || c === 9) this.#state = 'ext';
          else throw new WslbError('WSLB_ERR_BACKEND_BAD_RESPONSE', 'Invalid chunk size');
          i++;
          break;
        }
        case 'ext':
          if (c === 13) this.#state = 'size-lf';
          i++;
          break;
        case 'size-lf':
          if (c !== 10 || !this.#sawSizeDigit)
            throw new WslbError('WSLB_ERR_BACKEND_BAD_RESPONSE', 'Invalid chunk');
          i++;
          if (this.#size === 0) {
            this.#state = 'trailer';
            this.#trailerLineEmpty = true;
          } else this.#state = 'data';
          break;
        case 'data': {
          const n = Math.min(this.#size, chunk.length - i);
          this.#size -= n;
          i += n;
          if (this.#size === 0) this.#state = 'data-cr';
          break;
        }
        case 'data-cr':
          if (c !== 13) throw new WslbError('WSLB_ERR_BACKEND_BAD_RESPONSE', 'Invalid chunk end');
          this.#state = 'data-lf';
          i++;
          break;
        case 'data-lf':
          if (c !== 10) throw new WslbError('WSLB_ERR_BACKEND_BAD_RESPONSE', 'Invalid chunk end');
          this.#state = 'size';
          this.#sawSizeDigit = false;
          i++;
          break;
        case 'trailer':
          if (c === 13) this.#state = 'trailer-lf';
          else this.#trailerLineEmpty = false;
          i++;
          break;
        case 'trailer-lf':
          if (c !== 10) throw new WslbError('WSLB_ERR_BACKEND_BAD_RESPONSE', 'Invalid trailer');
          i++;
          if (this.#trailerLineEmpty) this.#state = 'done';
          else {
            this.#state = 'trailer';
            this.#trailerLineEmpty = true;
          }
          break;
      }
    }
    return i;
  }
}
