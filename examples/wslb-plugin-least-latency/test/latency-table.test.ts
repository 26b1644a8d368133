import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Candidate, LatencyTable } from '../src/latency-table.js';

/** A table on a simulated clock. */
function table(decay = 10_000): { table: LatencyTable; advance(ms: number): void } {
  let now = 0;
  return {
    table: new LatencyTable({ decay, now: () => now }),
    advance: (ms) => {
      now += ms;
    },
  };
}

const backend = (id: string, active = 0, weight = 1): Candidate => ({ id, active, weight });

describe('LatencyTable', () => {
  it('returns undefined for no candidates', () => {
    assert.equal(table().table.pick([]), undefined);
  });

  it('rotates over unmeasured backends with no probe in flight', () => {
    const { table: t } = table();
    const list = [backend('a'), backend('b'), backend('c')];
    assert.deepEqual(
      Array.from({ length: 6 }, () => t.pick(list)!.id),
      ['a', 'b', 'c', 'a', 'b', 'c'],
    );
  });

  it('prefers the lowest latency', () => {
    const { table: t } = table();
    t.observe('a', 40);
    t.observe('b', 5);
    t.observe('c', 80);
    const list = [backend('a'), backend('b'), backend('c')];
    for (let i = 0; i < 5; i++) assert.equal(t.pick(list)!.id, 'b');
  });

  it('weighs latency by live connections and weight', () => {
    const { table: t } = table();
    t.observe('a', 9); // (9 + 1) x (active + 1) / weight
    t.observe('b', 9);
    assert.equal(t.score(backend('a', 3)), 40);
    assert.equal(t.score(backend('b', 3, 4)), 10);
    assert.equal(t.pick([backend('a', 3), backend('b', 3, 4)])!.id, 'b');
    // A fast backend with many connections loses to a slower idle one.
    t.observe('c', 1);
    assert.equal(t.pick([backend('c', 10), backend('a', 0)])!.id, 'a');
  });

  it('jumps to a higher sample at once (peak) and comes down with time', () => {
    const { table: t, advance } = table(1000);
    t.observe('a', 10);
    t.observe('a', 500);
    assert.equal(t.estimate('a'), 500);
    advance(1000);
    const decayed = t.estimate('a')!;
    assert.ok(Math.abs(decayed - 500 / Math.E) < 1e-9, `decayed to ${decayed}`);
    // A low sample after one time constant moves the estimate most of the way down.
    const after = t.observe('a', 10);
    assert.ok(Math.abs(after - (500 / Math.E + 10 * (1 - 1 / Math.E))) < 1e-9, `now ${after}`);
  });

  it('tries an avoided slow backend again once its estimate has decayed', () => {
    const { table: t, advance } = table(10_000);
    t.observe('fast', 2);
    t.observe('slow', 500);
    const list = [backend('fast'), backend('slow')];
    let firstRetry: number | undefined;
    for (let second = 1; second <= 120 && firstRetry === undefined; second++) {
      advance(1000);
      const chosen = t.pick(list)!;
      if (chosen.id === 'slow') firstRetry = second;
      else t.observe('fast', 2);
    }
    assert.ok(firstRetry !== undefined, 'slow was never tried again');
    assert.ok(firstRetry > 30 && firstRetry < 70, `retried after ${firstRetry} s`);
  });

  it('sends one probe at a time to an unmeasured backend', () => {
    const { table: t } = table();
    t.observe('a', 3);
    const list = [backend('a', 5), backend('new')];
    assert.equal(t.pick(list)!.id, 'new');
    t.probe('new');
    for (let i = 0; i < 4; i++) assert.equal(t.pick(list)!.id, 'a');
    t.settle('new');
    assert.equal(t.pick(list)!.id, 'new');
  });

  it('still chooses when every backend is an unmeasured one with a probe in flight', () => {
    const { table: t } = table();
    t.probe('a');
    t.probe('b');
    t.probe('b');
    assert.equal(t.pick([backend('a'), backend('b')])!.id, 'a');
  });

  it('forgets a backend, which is then probed again', () => {
    const { table: t } = table();
    t.observe('a', 1);
    t.observe('b', 900);
    assert.equal(t.pick([backend('a'), backend('b')])!.id, 'a');
    t.forget('b');
    assert.equal(t.measured('b'), false);
    assert.equal(t.pick([backend('a'), backend('b')])!.id, 'b');
  });
});
