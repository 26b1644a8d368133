import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { type Backend, createLogger, createProxy, validatePluginOptions, type Proxy } from '@wslb/core';
import { assertNoLeakedHandles } from '@wslb/testing';
import {
  type CheckResult,
  HealthTracker,
  SlowStart,
  parseStatusRanges,
  resolveSettings,
  schema,
  statusAccepted,
} from '../src/index.js';

/** A proxy that never listens: a real pool with real hooks, and the state changes it reports. */
function poolOf(ids: string[]): { proxy: Proxy; changes: string[] } {
  const proxy = createProxy(
    { backends: ids.map((id, i) => ({ id, url: `ws://127.0.0.1:${9000 + i}` })) },
    { logger: createLogger({ level: 'silent' }) },
  );
  const changes: string[] = [];
  proxy.hooks.backendState.tap('test', (b, previous) => changes.push(`${b.id}:${previous}->${b.state}`));
  return { proxy, changes };
}

function result(backend: string, ok: boolean): CheckResult {
  return {
    backend,
    ok,
    type: 'ws',
    reason: ok ? '101 then close' : 'refused',
    durationMs: 1,
    at: Date.now(),
  };
}

describe('options', () => {
  it('parses statuses and ranges, and defaults to 200-399', () => {
    assert.deepEqual(parseStatusRanges(['200-299', 301, '404']), [
      { min: 200, max: 299 },
      { min: 301, max: 301 },
      { min: 404, max: 404 },
    ]);
    const ranges = resolveSettings({ type: 'http' }).active!.expect;
    assert.equal(statusAccepted(200, ranges), true);
    assert.equal(statusAccepted(399, ranges), true);
    assert.equal(statusAccepted(400, ranges), false);
    assert.equal(statusAccepted(199, ranges), false);
    assert.throws(() => parseStatusRanges('399-200'), /399-200/);
  });

  it('has nginx/upstream_check_module defaults; passive alone runs no active check', () => {
    const active = resolveSettings({}).active!;
    assert.deepEqual(
      {
        type: active.type,
        interval: active.interval,
        timeout: active.timeout,
        rise: active.rise,
        fall: active.fall,
      },
      { type: 'tcp', interval: 3000, timeout: 1000, rise: 2, fall: 5 },
    );
    const passiveOnly = resolveSettings({ passive: {} });
    assert.equal(passiveOnly.active, undefined);
    assert.deepEqual(passiveOnly.passive, { maxFails: 1, failTimeout: 10000 });
    assert.equal(resolveSettings({ type: 'ws', passive: { maxFails: 3 } }).active?.type, 'ws');
  });

  it('rejects bad options with their JSON path', () => {
    const issues = validatePluginOptions(
      schema,
      { type: 'udp', expect: ['20x'], rise: 0, passive: { maxFails: 0 } },
      '/plugins/0/options',
    );
    const paths = issues.map((i) => i.path);
    assert.ok(paths.includes('/plugins/0/options/type'), paths.join(','));
    assert.ok(paths.includes('/plugins/0/options/rise'), paths.join(','));
    assert.ok(paths.includes('/plugins/0/options/passive/maxFails'), paths.join(','));
    assert.ok(
      paths.some((p) => p.startsWith('/plugins/0/options/expect')),
      paths.join(','),
    );
    assert.deepEqual(validatePluginOptions(schema, { type: 'http', expect: ['200-299', 418] }), []);
  });
});

describe('HealthTracker', () => {
  afterEach(async () => {
    await assertNoLeakedHandles();
  });

  it('counts consecutive results like upstream_check_module (rise 2, fall 3)', () => {
    const { proxy, changes } = poolOf(['a', 'b']);
    const tracker = new HealthTracker(proxy.pool, resolveSettings({ type: 'ws', rise: 2, fall: 3 }));
    for (const b of proxy.pool.list()) tracker.track(b);
    const a = proxy.pool.get('a')!;
    const seq = (oks: boolean[]): string[] =>
      oks.map((ok) => {
        tracker.applyCheck(result('a', ok));
        return a.state;
      });
    // Two failures, then a success resets the count: still up.
    assert.deepEqual(seq([false, false, true]), ['up', 'up', 'up']);
    // Three in a row take it down.
    assert.deepEqual(seq([false, false, false]), ['up', 'up', 'down']);
    // One success, one failure (resets), then two successes bring it back.
    assert.deepEqual(seq([true, false, true, true]), ['down', 'down', 'down', 'up']);
    assert.deepEqual(changes, ['a:up->down', 'a:down->up']);
    assert.equal(a.lastCheckOk, true);
    assert.ok(a.lastCheck > 0, 'a.lastCheck > 0');
    assert.equal(proxy.pool.get('b')!.state, 'up');
  });

  it('starts down with defaultState down and needs rise successes', () => {
    const { proxy } = poolOf(['a']);
    const tracker = new HealthTracker(
      proxy.pool,
      resolveSettings({ type: 'tcp', rise: 2, defaultState: 'down' }),
    );
    tracker.track(proxy.pool.get('a')!);
    assert.equal(proxy.pool.get('a')!.state, 'down');
    tracker.applyCheck(result('a', true));
    assert.equal(proxy.pool.get('a')!.state, 'down');
    tracker.applyCheck(result('a', true));
    assert.equal(proxy.pool.get('a')!.state, 'up');
  });

  it('never clears an admin drain; enable restores the last health verdict', () => {
    const { proxy } = poolOf(['a', 'b']);
    const tracker = new HealthTracker(proxy.pool, resolveSettings({ type: 'ws', rise: 1, fall: 1 }));
    for (const b of proxy.pool.list()) tracker.track(b);
    const a = proxy.pool.get('a')!;
    proxy.pool.drain(a);
    tracker.applyCheck(result('a', false));
    assert.equal(a.state, 'draining');
    tracker.applyCheck(result('a', true));
    assert.equal(a.state, 'draining');
    tracker.applyCheck(result('a', false));
    proxy.pool.enable(a);
    assert.equal(a.state, 'down', 'enable gives back the health verdict (down)');
    tracker.applyCheck(result('a', true));
    assert.equal(a.state, 'up');
  });

  it('passive: maxFails failed dials within failTimeout take it out for failTimeout', async () => {
    const { proxy, changes } = poolOf(['a', 'b']);
    const tracker = new HealthTracker(
      proxy.pool,
      resolveSettings({ passive: { maxFails: 2, failTimeout: 150 } }),
    );
    for (const b of proxy.pool.list()) tracker.track(b);
    const a = proxy.pool.get('a')!;
    const t0 = Date.now();
    assert.equal(tracker.dialFailed(a, 'refused', t0 - 200), false);
    // The first failure is outside the window: one failure counted, still up.
    assert.equal(tracker.dialFailed(a, 'refused', t0), false);
    assert.equal(a.state, 'up');
    // A success in between forgets the failures.
    tracker.dialSucceeded(a);
    assert.equal(tracker.dialFailed(a, 'refused', t0 + 1), false);
    assert.equal(tracker.dialFailed(a, 'refused', t0 + 2), true);
    assert.equal(a.state, 'down');
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(a.state, 'up', 'back after failTimeout');
    assert.deepEqual(changes, ['a:up->down', 'a:down->up']);
    tracker.stop();
  });

  it("passive: a pool's only backend is never marked down", () => {
    const { proxy } = poolOf(['only']);
    const tracker = new HealthTracker(proxy.pool, resolveSettings({ passive: { maxFails: 1 } }));
    tracker.track(proxy.pool.get('only')!);
    assert.equal(tracker.dialFailed(proxy.pool.get('only')!, 'refused'), false);
    assert.equal(proxy.pool.get('only')!.state, 'up');
    tracker.stop();
  });

  it('a backend is up only when the active and passive verdicts agree', async () => {
    const { proxy } = poolOf(['a', 'b']);
    const tracker = new HealthTracker(
      proxy.pool,
      resolveSettings({ type: 'ws', rise: 1, fall: 1, passive: { maxFails: 1, failTimeout: 100 } }),
    );
    for (const b of proxy.pool.list()) tracker.track(b);
    const a = proxy.pool.get('a')!;
    tracker.dialFailed(a, 'refused');
    tracker.applyCheck(result('a', true));
    assert.equal(a.state, 'down', 'passive still holds it out');
    tracker.applyCheck(result('a', false));
    await new Promise((r) => setTimeout(r, 180));
    assert.equal(a.state, 'down', 'active checks say down after the passive penalty');
    tracker.applyCheck(result('a', true));
    assert.equal(a.state, 'up');
    tracker.stop();
  });
});

describe('SlowStart', () => {
  it('ramps a recovered backend linearly to its weight; never at start-up', () => {
    const { proxy } = poolOf(['a', 'b']);
    const [a, b] = proxy.pool.list() as [Backend, Backend];
    const slow = new SlowStart(1000);
    assert.equal(slow.pick([a, b]), undefined, 'no ramp before a recovery: the balancer decides');
    const t0 = 1_000_000;
    slow.recovered(b, t0);
    // Half way: b weighs 0.5 against a's 1, so it gets one pick in three, interleaved.
    const picks = Array.from({ length: 30 }, () => slow.pick([a, b], t0 + 500)!.id);
    assert.equal(picks.filter((id) => id === 'b').length, 10);
    assert.equal(picks.slice(0, 3).filter((id) => id === 'b').length, 1);
    assert.equal(slow.fraction(b, t0 + 100), 0.1);
    // Done ramping: back to the balancer.
    assert.equal(slow.pick([a, b], t0 + 1000), undefined);
    assert.equal(slow.ramping, 0);
  });

  it("a backend's own slowStart wins over the plugin-wide one", () => {
    const proxy = createProxy(
      { backends: [{ id: 'a', url: 'ws://127.0.0.1:9000', slowStart: 4000 }] },
      { logger: createLogger({ level: 'silent' }) },
    );
    const slow = new SlowStart(1000);
    const a = proxy.pool.get('a')!;
    slow.recovered(a, 0);
    assert.equal(slow.durationOf(a), 4000);
    assert.equal(slow.fraction(a, 1000), 0.25);
  });
});
