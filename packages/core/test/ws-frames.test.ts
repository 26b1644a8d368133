import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  CLOSE_GOING_AWAY_TO_CLIENT,
  FRAME_BOUNDARY,
  advanceFrames,
  closeGoingAwayToServer,
} from '../src/ws-frames.js';

/** One frame with a payload of `length` bytes, masked or not, the header as RFC 6455 lays it out. */
function frame(length: number, masked: boolean, opcode = 0x2): Buffer {
  let header: number[];
  if (length < 126) header = [0x80 | opcode, (masked ? 0x80 : 0) | length];
  else if (length < 0x10000) header = [0x80 | opcode, (masked ? 0x80 : 0) | 126, length >> 8, length & 0xff];
  else {
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(length));
    header = [0x80 | opcode, (masked ? 0x80 : 0) | 127, ...big];
  }
  return Buffer.concat([Buffer.from(header), masked ? randomBytes(4) : Buffer.alloc(0), randomBytes(length)]);
}

/** A seeded generator, so that a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const EDGE_LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70000];

describe('following WebSocket frame boundaries', () => {
  it('knows after every chunk whether it stands between frames, however the stream is cut', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const next = random(seed);
      const frames: Buffer[] = [];
      const ends = new Set<number>([0]);
      let offset = 0;
      for (let f = 0; f < 30; f++) {
        const length =
          next() < 0.3 ? EDGE_LENGTHS[Math.floor(next() * EDGE_LENGTHS.length)]! : Math.floor(next() * 300);
        const bytes = frame(length, next() < 0.5, next() < 0.2 ? 0x9 : 0x2);
        frames.push(bytes);
        offset += bytes.length;
        ends.add(offset);
      }
      const stream = Buffer.concat(frames);
      let cursor = FRAME_BOUNDARY;
      let at = 0;
      while (at < stream.length) {
        // Cuts anywhere: inside headers, extended lengths, masks and payloads, or 1 byte at a time.
        const size = next() < 0.3 ? 1 + Math.floor(next() * 3) : 1 + Math.floor(next() * 20_000);
        const chunk = stream.subarray(at, Math.min(stream.length, at + size));
        cursor = advanceFrames(cursor, chunk);
        at += chunk.length;
        assert.equal(
          cursor === FRAME_BOUNDARY,
          ends.has(at),
          `seed ${seed}: at byte ${at} of ${stream.length} the cursor says ${cursor}`,
        );
      }
      assert.equal(cursor, FRAME_BOUNDARY, `seed ${seed}: the stream ends between frames`);
    }
  });

  it('keeps a 64-bit length exact across chunks', () => {
    const big = Buffer.from([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 5]); // 2^32 + 5 bytes of payload
    let cursor = advanceFrames(FRAME_BOUNDARY, big);
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < 4096; i++) cursor = advanceFrames(cursor, chunk);
    assert.notEqual(cursor, FRAME_BOUNDARY);
    cursor = advanceFrames(cursor, Buffer.alloc(4));
    assert.notEqual(cursor, FRAME_BOUNDARY, 'one byte still to come');
    cursor = advanceFrames(cursor, Buffer.alloc(1));
    assert.equal(cursor, FRAME_BOUNDARY);
  });

  it('writes close frames with code 1001, unmasked to a client and masked to a server', () => {
    assert.deepEqual([...CLOSE_GOING_AWAY_TO_CLIENT], [0x88, 0x02, 0x03, 0xe9]);
    const masked = closeGoingAwayToServer();
    assert.equal(masked[0], 0x88);
    assert.equal(masked[1], 0x82);
    const key = masked.subarray(2, 6);
    assert.equal((masked[6]! ^ key[0]!) * 256 + (masked[7]! ^ key[1]!), 1001);
    assert.equal(advanceFrames(FRAME_BOUNDARY, masked), FRAME_BOUNDARY, 'a whole frame');
  });
});
