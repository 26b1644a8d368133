import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { type WslbError, readResponseHead } from '@wslb/core';

/*
 * The client side of a WebSocket check, without a WebSocket library: an upgrade request, the
 * 101 with its accept key, an optional ping answered by a pong, then a close handshake. It runs
 * in the proxy every few seconds; the `ws` package would add ~0.45 MiB to the proxy's heap for it,
 * which on the data path costs more than these lines (bench/RESULTS.md, history step 06).
 */

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** Larger answer heads are not a WebSocket server's 101. */
const MAX_HEAD = 16384;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;
/** Close code 1000 (normal closure). */
const NORMAL_CLOSURE = Buffer.from([0x03, 0xe8]);

export interface WsCheckRequest {
  path: string;
  host: string;
  userAgent: string;
  headers: Record<string, string>;
  ping: boolean;
}

export type WsCheckSettle = (ok: boolean, reason: string, status?: number) => void;

/** A masked client control frame (RFC 6455 section 5.3); payloads here are at most 125 bytes. */
function controlFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = 0x80 | payload.length;
  mask.copy(frame, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i]! ^ mask[i % 4]!;
  return frame;
}

function upgradeHead(request: WsCheckRequest, key: string): string {
  const headers: Record<string, string> = { host: request.host, 'user-agent': request.userAgent };
  // Configured headers replace the defaults, whatever their case.
  for (const [name, value] of Object.entries(request.headers)) headers[name.toLowerCase()] = value;
  let head = `GET ${request.path} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  return (
    head +
    'connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n' +
    `sec-websocket-key: ${key}\r\n\r\n`
  );
}

/**
 * Runs a WebSocket check on `socket` (already connecting, with TLS and a PROXY header when the
 * backend needs them) and calls `settle` once with its outcome. Returns the release function.
 */
export function runWsCheck(socket: Socket, request: WsCheckRequest, settle: WsCheckSettle): () => void {
  const key = randomBytes(16).toString('base64');
  const accept = createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64');
  let pending: Buffer = Buffer.alloc(0);
  /** Payload bytes of a data frame still to skip. */
  let skip = 0;
  let answered = !request.ping;
  let closeSent = false;

  const sendClose = (): void => {
    closeSent = true;
    socket.write(controlFrame(OPCODE_CLOSE, NORMAL_CLOSURE));
  };

  /** Reads the server's frames: data is skipped, a pong answers the ping, a close ends the check. */
  const readFrames = (chunk: Buffer): void => {
    if (skip > 0) {
      const skipped = Math.min(skip, chunk.length);
      skip -= skipped;
      chunk = chunk.subarray(skipped);
    }
    pending = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 2) {
      const opcode = pending[0]! & 0x0f;
      const masked = (pending[1]! & 0x80) !== 0;
      let length = pending[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (pending.length < 4) return;
        length = pending.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (pending.length < 10) return;
        length = Number(pending.readBigUInt64BE(2));
        offset = 10;
      }
      if (masked) offset += 4;
      if (pending.length < offset) return;
      const control = (opcode & 0x8) !== 0;
      if (!control) {
        // A message the backend sends on connect: its payload is skipped, never buffered.
        const available = Math.min(length, pending.length - offset);
        skip = length - available;
        pending = pending.subarray(offset + available);
        continue;
      }
      if (pending.length < offset + length) return;
      pending = pending.subarray(offset + length);
      if (opcode === OPCODE_PONG && !answered) {
        answered = true;
        sendClose();
      } else if (opcode === OPCODE_CLOSE) {
        if (!answered) settle(false, 'closed without answering the ping');
        else settle(true, request.ping ? '101, pong, then close' : '101 then close', 101);
        return;
      }
      // A ping from the backend needs no answer: the check is closing anyway.
    }
  };

  // Errors before the head are the reader's to report, later ones the frame reader's; none may
  // go unheard between the two.
  socket.on('error', () => {});
  socket.write(upgradeHead(request, key));
  // The head is read by the core's reader, as the proxy reads a backend's 101.
  readResponseHead(socket, MAX_HEAD, 0).then(
    (answer) => {
      if (answer.status !== 101) {
        settle(false, `answered ${answer.status} instead of 101`, answer.status);
        return;
      }
      if (String(answer.headers.upgrade).toLowerCase() !== 'websocket') {
        settle(false, 'upgrade failed: 101 without Upgrade: websocket', 101);
        return;
      }
      if (answer.headers['sec-websocket-accept'] !== accept) {
        settle(false, 'upgrade failed: invalid Sec-WebSocket-Accept', 101);
        return;
      }
      socket.on('data', readFrames);
      socket.on('error', (err: Error) => settle(false, `socket failed: ${err.message}`));
      socket.once('close', () => {
        if (!answered) settle(false, 'closed without answering the ping');
        else settle(false, closeSent ? 'closed without a close frame' : 'closed by the backend');
      });
      if (request.ping) socket.write(controlFrame(OPCODE_PING, Buffer.alloc(0)));
      else sendClose();
      if (answer.rest.length > 0) readFrames(answer.rest);
      socket.resume();
    },
    (err: WslbError) => {
      const closed = err.code === 'WSLB_ERR_BACKEND_CLOSED' && err.cause === undefined;
      settle(false, closed ? 'closed before the upgrade' : `upgrade failed: ${err.message}`);
    },
  );
  return () => socket.destroy();
}
