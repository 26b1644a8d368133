import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LeastConnections } from '../src/least-connections.js';

interface Fake {
  id: string;
  weight: number;
  active: number;
}

function pool(weights: Record<string, number>, active: Record<string, number> = {}): Fake[] {
  return Object.entries(weights).map(([id, weight]) => ({ id, weight, active: active[id] ?? 0 }));
}

/** Picks `count` times; each pick opens a connection on the winner that stays open. */
function open(picker: LeastConnections, backends: Fake[], count: number): string[] {
  return Array.from({ length: count }, () => {
    const b = picker.pick(backends)!;
    b.active++;
    return b.id;
  });
}

function counts(ids: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of ids) out[id] = (out[id] ?? 0) + 1;
  return out;
}

/** A seeded generator (mulberry32), so random choices are repeatable. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('least connections', { timeout: 10_000 }, () => {
  it('picks the backend with the fewest live connections', () => {
    const picker = new LeastConnections();
    const backends = pool({ a: 1, b: 1, c: 1 }, { a: 5, b: 2, c: 9 });
    assert.equal(picker.pick(backends)!.id, 'b');
  });

  it('compares load relative to weight: 4 on weight 4 is lighter than 2 on weight 1', () => {
    const picker = new LeastConnections();
    assert.equal(picker.pick(pool({ a: 4, b: 1 }, { a: 4, b: 2 }))!.id, 'a');
    assert.equal(picker.pick(pool({ a: 4, b: 1 }, { a: 9, b: 2 }))!.id, 'b');
  });

  it('rotates among equally loaded backends when connections close at once (wrap-around)', () => {
    const picker = new LeastConnections();
    const backends = pool({ a: 1, b: 1, c: 1 });
    // Short requests: every connection is gone before the next pick, so all loads stay equal.
    const order = Array.from({ length: 7 }, () => picker.pick(backends)!.id);
    assert.deepEqual(order, ['a', 'b', 'c', 'a', 'b', 'c', 'a']);
  });

  it('fills a newcomer first: 50 held connections on one backend send the next 50 elsewhere', () => {
    const picker = new LeastConnections();
    const backends = pool({ a: 1, b: 1, c: 1 }, { a: 50 });
    assert.deepEqual(counts(open(picker, backends, 50)), { b: 25, c: 25 });
    // b and c hold 25 each: they take the next 50 too, then all three are level.
    assert.deepEqual(counts(open(picker, backends, 50)), { b: 25, c: 25 });
    assert.deepEqual(counts(open(picker, backends, 30)), { a: 10, b: 10, c: 10 });
  });

  it('spreads 10,000 long-lived connections within 2% of the weights 5:3:2', () => {
    const picker = new LeastConnections();
    const got = counts(open(picker, pool({ a: 5, b: 3, c: 2 }), 10_000));
    for (const [id, share] of Object.entries({ a: 0.5, b: 0.3, c: 0.2 })) {
      assert.ok(Math.abs(got[id]! / 10_000 - share) <= 0.02, `${id} got ${got[id]} of 10000`);
    }
  });

  it('returns undefined for an empty candidate list', () => {
    assert.equal(new LeastConnections().pick([]), undefined);
    assert.equal(new LeastConnections({ choices: 2 }).pick([]), undefined);
  });

  it('forgets a removed backend, so its tie order starts afresh', () => {
    const picker = new LeastConnections();
    const backends = pool({ a: 1, b: 1 });
    assert.equal(picker.pick(backends)!.id, 'a');
    picker.forget('a');
    assert.equal(picker.pick(backends)!.id, 'a');
  });

  describe('power of two choices (choices: 2)', () => {
    it('never picks the most loaded of 3 when the draw holds 2 distinct backends', () => {
      const picker = new LeastConnections({ choices: 2, random: seeded(7) });
      const backends = pool({ a: 1, b: 1, c: 1 }, { a: 0, b: 10, c: 20 });
      const got = counts(Array.from({ length: 1000 }, () => picker.pick(backends)!.id));
      assert.equal(got.c, undefined, 'the most loaded backend is never the lesser of two distinct ones');
      // a wins every draw it is in (2 of the 3 pairs), b only the pair {b, c}.
      assert.ok(Math.abs(got.a! / 1000 - 2 / 3) <= 0.05, `a got ${got.a}`);
    });

    it('spreads 10,000 long-lived connections within 2% of the weights 5:3:2', () => {
      const picker = new LeastConnections({ choices: 2, random: seeded(42) });
      const got = counts(open(picker, pool({ a: 5, b: 3, c: 2 }), 10_000));
      for (const [id, share] of Object.entries({ a: 0.5, b: 0.3, c: 0.2 })) {
        assert.ok(Math.abs(got[id]! / 10_000 - share) <= 0.02, `${id} got ${got[id]} of 10000`);
      }
    });

    it('keeps 10 backends within a few connections of each other over 10,000 picks', () => {
      const picker = new LeastConnections({ choices: 2, random: seeded(3) });
      const weights = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`b${i}`, 1]));
      const got = counts(open(picker, pool(weights), 10_000));
      const values = Object.values(got);
      assert.equal(values.length, 10);
      assert.ok(Math.max(...values) - Math.min(...values) <= 10, JSON.stringify(got));
    });

    it('compares every candidate when there are no more than `choices`', () => {
      const picker = new LeastConnections({ choices: 2, random: () => 0 });
      assert.equal(picker.pick(pool({ a: 1, b: 1 }, { a: 3, b: 1 }))!.id, 'b');
    });

    it('stays within range with a random source that returns values near 1', () => {
      const picker = new LeastConnections({ choices: 2, random: () => 0.9999999999 });
      const backends = pool({ a: 1, b: 1, c: 1, d: 1 });
      for (let i = 0; i < 10; i++) assert.ok(picker.pick(backends), 'picker.pick(backends)');
    });
  });
});
