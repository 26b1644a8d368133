import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { xxHash32 } from 'js-xxhash';
import { WeightedRendezvous, type Weighted } from '../src/rendezvous.js';

function backends(weights: Record<string, number>): Weighted[] {
  return Object.entries(weights).map(([id, weight]) => ({ id, weight }));
}

/** Client-address-like keys: 10.0.0.1, 10.0.0.2, ... */
function addresses(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
}

function assign(hasher: WeightedRendezvous, keys: readonly string[], list: readonly Weighted[]): string[] {
  return keys.map((k) => hasher.pick(k, list)!.id);
}

function counts(ids: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of ids) out[id] = (out[id] ?? 0) + 1;
  return out;
}

const five = backends({ b1: 1, b2: 1, b3: 1, b4: 1, b5: 1 });

describe('weighted rendezvous hashing', { timeout: 20_000 }, () => {
  it('spreads 10,000 keys within 2% of the weights 5:3:2', () => {
    const got = counts(assign(new WeightedRendezvous(), addresses(10_000), backends({ a: 5, b: 3, c: 2 })));
    for (const [id, share] of Object.entries({ a: 0.5, b: 0.3, c: 0.2 })) {
      assert.ok(Math.abs(got[id]! / 10_000 - share) <= 0.02, `${id} got ${got[id]} of 10000`);
    }
  });

  it('gives each of 5 backends 10-30% of 400 keys', () => {
    const got = counts(assign(new WeightedRendezvous(), addresses(400), five));
    assert.equal(Object.keys(got).length, 5);
    for (const [id, n] of Object.entries(got)) assert.ok(n >= 40 && n <= 120, `${id} got ${n} of 400`);
  });

  it('moves none of the other backends’ keys when one of 5 leaves, and all of its keys come back', () => {
    const hasher = new WeightedRendezvous();
    const keys = addresses(10_000);
    const before = assign(hasher, keys, five);
    const after = assign(
      hasher,
      keys,
      five.filter((b) => b.id !== 'b3'),
    );
    let movedOthers = 0;
    let othersTotal = 0;
    const receivers = new Set<string>();
    before.forEach((owner, i) => {
      if (owner === 'b3') {
        assert.notEqual(after[i], 'b3');
        receivers.add(after[i]!);
        return;
      }
      othersTotal++;
      if (after[i] !== owner) movedOthers++;
    });
    assert.ok(movedOthers / othersTotal <= 0.02, `${movedOthers} of ${othersTotal} keys of the others moved`);
    assert.equal(movedOthers, 0);
    // Its keys spread over all the others, not onto one neighbour.
    assert.deepEqual([...receivers].sort(), ['b1', 'b2', 'b4', 'b5']);
    assert.deepEqual(assign(hasher, keys, five), before);
  });

  it('moves keys only onto a backend whose weight grows', () => {
    const hasher = new WeightedRendezvous();
    const keys = addresses(5000);
    const before = assign(hasher, keys, five);
    const heavier = five.map((b) => (b.id === 'b1' ? { ...b, weight: 2 } : b));
    const after = assign(hasher, keys, heavier);
    let moved = 0;
    after.forEach((owner, i) => {
      if (owner === before[i]) return;
      moved++;
      assert.equal(owner, 'b1');
    });
    // b1 goes from 1/5 to 2/6 of the keys.
    assert.ok(Math.abs(moved / 5000 - (2 / 6 - 1 / 5)) <= 0.02, `${moved} keys moved`);
  });

  it('does not depend on candidate order', () => {
    const hasher = new WeightedRendezvous();
    const keys = addresses(500);
    assert.deepEqual(assign(hasher, keys, [...five].reverse()), assign(hasher, keys, five));
  });

  it('returns undefined for an empty candidate list, the only one for a single candidate', () => {
    const hasher = new WeightedRendezvous();
    assert.equal(hasher.pick('10.0.0.1', []), undefined);
    assert.equal(hasher.pick('10.0.0.1', [five[2]!]), five[2]);
  });

  it('maps the same keys to the same backends in a new process (stable across restarts)', async () => {
    const keys = addresses(300);
    const here = assign(new WeightedRendezvous(), keys, five);
    const module = new URL('../src/rendezvous.ts', import.meta.url).href;
    const script = `
      import { WeightedRendezvous } from ${JSON.stringify(module)};
      const five = ${JSON.stringify(five)};
      const keys = ${JSON.stringify(keys)};
      const hasher = new WeightedRendezvous();
      process.stdout.write(JSON.stringify(keys.map((k) => hasher.pick(k, five).id)));
    `;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: fileURLToPath(new URL('.', import.meta.url)), timeout: 15_000 },
    );
    assert.deepEqual(JSON.parse(stdout), here);
  });

  it('hashes with xxHash32 as published (reference vectors)', () => {
    assert.equal(xxHash32('', 0) >>> 0, 0x02cc5d05);
    assert.equal(xxHash32('abc', 0) >>> 0, 0x32d153ff);
  });

  it('keeps the published mapping of xxHash32 rendezvous (a change would move every user)', () => {
    const hasher = new WeightedRendezvous();
    const got = ['10.0.0.1', '192.168.1.20', 'user-42', ''].map((k) => hasher.pick(k, five)!.id);
    assert.deepEqual(got, GOLDEN);
  });
});

/** Owners of four keys among b1..b5 (weight 1), as computed by the released algorithm. */
const GOLDEN = ['b4', 'b3', 'b2', 'b3'];
