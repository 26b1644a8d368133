import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackendPool } from '../src/pool.js';
import { createHooks } from '../src/hooks.js';

function pool() {
  const hooks = createHooks();
  const states: string[] = [];
  hooks.backendState.tap('test', (b, previous, reason) =>
    states.push(`${b.id}:${previous}->${b.state}:${reason}`),
  );
  const p = new BackendPool(hooks, [
    { id: 'a', url: 'ws://127.0.0.1:1', weight: 2 },
    { id: 'b', url: 'ws://127.0.0.1:2', maxConnections: 1 },
    { id: 'c', url: 'ws://127.0.0.1:3', backup: true },
  ]);
  return { p, states, hooks };
}

describe('BackendPool', () => {
  it('offers available primaries as candidates, in config order', () => {
    const { p } = pool();
    assert.deepEqual(
      p.candidates().map((b) => b.id),
      ['a', 'b'],
    );
  });

  it('leaves out a full backend and one already tried', () => {
    const { p } = pool();
    p.get('b')!.active = 1;
    assert.deepEqual(
      p.candidates().map((b) => b.id),
      ['a'],
    );
    assert.deepEqual(
      p.candidates(new Set([p.get('a')!])).map((b) => b.id),
      ['c'],
    );
  });

  it('falls back to backups only when no primary is available', () => {
    const { p } = pool();
    p.setState(p.get('a')!, 'down', 'test');
    p.drain(p.get('b')!);
    assert.deepEqual(
      p.candidates().map((b) => b.id),
      ['c'],
    );
    p.setState(p.get('c')!, 'down', 'test');
    assert.deepEqual(p.candidates(), []);
  });

  it('keeps an admin drain through health results until enable', () => {
    const { p, states } = pool();
    const a = p.get('a')!;
    p.drain(a);
    p.setState(a, 'up', 'check passed');
    assert.equal(a.state, 'draining');
    p.setState(a, 'down', 'check failed');
    assert.equal(a.state, 'draining');
    p.enable(a);
    assert.equal(a.state, 'down', 'enable restores the last health state');
    assert.deepEqual(states, ['a:up->draining:admin drain', 'a:draining->down:admin enable']);
  });

  it('reconfigures kept backends in place on update, so counters survive', () => {
    const { p } = pool();
    const a = p.get('a')!;
    a.active = 5;
    a.total = 9;
    const { added, removed } = p.update([
      { id: 'a', url: 'ws://127.0.0.1:1', weight: 7 },
      { id: 'd', url: 'ws://127.0.0.1:4' },
    ]);
    assert.equal(p.get('a'), a);
    assert.equal(a.weight, 7);
    assert.equal(a.active, 5);
    assert.equal(a.total, 9);
    assert.deepEqual(
      added.map((b) => b.id),
      ['d'],
    );
    assert.deepEqual(removed.map((b) => b.id).sort(), ['b', 'c']);
    assert.ok(
      removed.every((b) => b.removed && !b.available),
      'removed.every((b) => b.removed && !b.available)',
    );
  });

  it('derives a stable id from host and port when none is given', () => {
    const hooks = createHooks();
    const p = new BackendPool(hooks, [{ url: 'ws://127.0.0.1:9001/base/' }, { url: 'wss://example.test' }]);
    assert.deepEqual(
      p.list().map((b) => b.id),
      ['127.0.0.1:9001', 'example.test:443'],
    );
    assert.equal(p.list()[0]!.basePath, '/base');
  });
});
