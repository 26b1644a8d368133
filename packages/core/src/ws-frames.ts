import { randomBytes } from 'node:crypto';

/*
 * Where a WebSocket byte stream stands between frames, so that the proxy can end a tunnel with a
 * close frame of its own without cutting a frame in two. Only frame headers are read; payloads
 * are skipped by their length, nothing is allocated or copied, and a direction's whole state is
 * one number (an idle tunnel keeps two).
 *
 * The number packs: the phase (low 3 bits), the header bytes still to read in that phase (5 bits:
 * 1-8 length bytes, plus 16 when the frame is masked; or 1-4 mask bytes), and the payload length
 * left or being read (above them).
 */

/** The start of the stream, or just after a complete frame. */
export const FRAME_BOUNDARY = 0;

const LENGTH = 1; // next byte: mask bit and 7-bit length
const EXTENDED = 2; // reading a 16- or 64-bit length
const MASK = 3; // skipping the 4-byte masking key
const PAYLOAD = 4;

const PHASE = 8;
const COUNT = 32;
const MASKED = 16;
const LOW = PHASE * COUNT;
/** Lengths are capped here so that the packed number stays exact; no real frame is this long. */
const MAX_LENGTH = Math.floor(Number.MAX_SAFE_INTEGER / LOW);

function pack(phase: number, count: number, length: number): number {
  return Math.min(length, MAX_LENGTH) * LOW + count * PHASE + phase;
}

/** Whether a cursor stands between two frames. */
export function atFrameBoundary(cursor: number): boolean {
  return cursor === FRAME_BOUNDARY;
}

/** The cursor after `chunk` went by. */
export function advanceFrames(cursor: number, chunk: Buffer): number {
  let phase = cursor % PHASE;
  let count = Math.floor(cursor / PHASE) % COUNT;
  let length = Math.floor(cursor / LOW);
  const end = chunk.length;
  // The common case: a chunk inside one payload.
  if (phase === PAYLOAD && length > end) return pack(PAYLOAD, 0, length - end);
  let i = 0;
  while (i < end) {
    switch (phase) {
      case FRAME_BOUNDARY:
        i++; // FIN, RSV and opcode: nothing here depends on them
        phase = LENGTH;
        break;
      case LENGTH: {
        const byte = chunk[i++]!;
        const masked = (byte & 0x80) !== 0;
        const short = byte & 0x7f;
        if (short >= 126) {
          phase = EXTENDED;
          count = (short === 126 ? 2 : 8) + (masked ? MASKED : 0);
          length = 0;
        } else {
          length = short;
          phase = masked ? MASK : PAYLOAD;
          count = masked ? 4 : 0;
        }
        break;
      }
      case EXTENDED: {
        const masked = count >= MASKED;
        const left = (count % MASKED) - 1;
        length = Math.min(length * 256 + chunk[i++]!, MAX_LENGTH);
        if (left > 0) count = left + (masked ? MASKED : 0);
        else {
          phase = masked ? MASK : PAYLOAD;
          count = masked ? 4 : 0;
        }
        break;
      }
      case MASK: {
        const skip = Math.min(count, end - i);
        i += skip;
        count -= skip;
        if (count === 0) phase = PAYLOAD;
        break;
      }
      default: {
        const skip = Math.min(length, end - i);
        i += skip;
        length -= skip;
        break;
      }
    }
    if (phase === PAYLOAD && length === 0) phase = FRAME_BOUNDARY;
  }
  return pack(phase, count, length);
}

/** A close frame with code 1001 (going away), as a server sends it: unmasked. */
export const CLOSE_GOING_AWAY_TO_CLIENT = Buffer.from([0x88, 0x02, 0x03, 0xe9]);

/** A close frame with code 1001 as a client sends it: masked with a fresh key (RFC 6455 5.3). */
export function closeGoingAwayToServer(): Buffer {
  const key = randomBytes(4);
  return Buffer.from([0x88, 0x82, key[0]!, key[1]!, key[2]!, key[3]!, 0x03 ^ key[0]!, 0xe9 ^ key[1]!]);
}
