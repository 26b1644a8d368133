import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SmoothWeightedRoundRobin, type Weighted } from '../src/index.js';

function backends(weights: Record<string, number>): Weighted[] {
  return Object.entries(weights).map(([id, weight]) => ({ id, weight }));
}

function picks(picker: SmoothWeightedRoundRobin, candidates: readonly Weighted[], count: number): string[] {
  return Array.from({ length: count }, () => picker.pick(candidates)!.id);
}

function counts(ids: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of ids) out[id] = (out[id] ?? 0) + 1;
  return out;
}

describe('smooth weighted round-robin', { timeout: 10_000 }, () => {
  it('interleaves weights 5,1,1 as nginx does: a a b a c a a', () => {
    const picker = new SmoothWeightedRoundRobin();
    assert.deepEqual(picks(picker, backends({ a: 5, b: 1, c: 1 }), 7), ['a', 'a', 'b', 'a', 'c', 'a', 'a']);
  });

  it('wraps around: every cycle of total-weight picks repeats the first', () => {
    const picker = new SmoothWeightedRoundRobin();
    const list = backends({ a: 5, b: 1, c: 1 });
    const first = picks(picker, list, 7);
    for (let cycle = 0; cycle < 5; cycle++) assert.deepEqual(picks(picker, list, 7), first);
  });

  it('rotates equal weights in order, wrapping after the last', () => {
    const picker = new SmoothWeightedRoundRobin();
    assert.deepEqual(picks(picker, backends({ a: 1, b: 1, c: 1 }), 7), ['a', 'b', 'c', 'a', 'b', 'c', 'a']);
  });

  it('spreads 10,000 picks within 2% of the weights 5:3:2', () => {
    const picker = new SmoothWeightedRoundRobin();
    const got = counts(picks(picker, backends({ a: 5, b: 3, c: 2 }), 10_000));
    for (const [id, share] of Object.entries({ a: 0.5, b: 0.3, c: 0.2 })) {
      assert.ok(Math.abs(got[id]! / 10_000 - share) <= 0.02, `${id} got ${got[id]} of 10000`);
    }
  });

  it('returns undefined for an empty candidate list, the only one for a single candidate', () => {
    const picker = new SmoothWeightedRoundRobin();
    assert.equal(picker.pick([]), undefined);
    const only = { id: 'x', weight: 3 };
    assert.equal(picker.pick([only]), only);
  });

  it('keeps balancing the rest when a candidate leaves and takes it back when it returns', () => {
    const picker = new SmoothWeightedRoundRobin();
    const all = backends({ a: 1, b: 1, c: 1 });
    picks(picker, all, 4);
    // What the earlier picks left in each current value shifts a share by at most one pick.
    const withoutB = all.filter((b) => b.id !== 'b');
    const two = counts(picks(picker, withoutB, 100));
    assert.deepEqual(Object.keys(two).sort(), ['a', 'c']);
    for (const id of ['a', 'c']) assert.ok(Math.abs(two[id]! - 50) <= 1, `${id} got ${two[id]} of 100`);
    const three = counts(picks(picker, all, 300));
    for (const id of ['a', 'b', 'c'])
      assert.ok(Math.abs(three[id]! - 100) <= 1, `${id} got ${three[id]} of 300`);
  });

  it('treats a weight of 0 or less as 1', () => {
    const picker = new SmoothWeightedRoundRobin();
    assert.deepEqual(counts(picks(picker, backends({ a: 0, b: 1 }), 10)), { a: 5, b: 5 });
  });
});
