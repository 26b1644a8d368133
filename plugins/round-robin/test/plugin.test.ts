import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { STAGE_BALANCE, createLogger, createProxy, type Backend, type ConnectionContext } from '@wslb/core';
import roundRobin, { schema } from '../src/index.js';

/** Runs the select hook the way the core does, over the pool's own candidates. */
async function select(proxy: ReturnType<typeof createProxy>): Promise<string | undefined> {
  const ctx = { id: 1, kind: 'ws', clientAddress: '127.0.0.1' } as unknown as ConnectionContext;
  const chosen = (await proxy.hooks.select.promise(ctx, proxy.pool.candidates())) as Backend | undefined;
  return chosen?.id;
}

describe('round-robin plugin', { timeout: 10_000 }, () => {
  it('taps select at the balance stage and says it is a balancer', async () => {
    const plugin = roundRobin();
    assert.equal(plugin.name, 'round-robin');
    assert.equal(plugin.balancer, true);
    assert.equal(roundRobin.schema, schema);
    const proxy = createProxy(
      { backends: [{ id: 'a', url: 'ws://127.0.0.1:1' }], plugins: [plugin] },
      { logger: createLogger({ level: 'silent' }) },
    );
    await proxy.ready();
    const tap = proxy.hooks.select.taps.find((t) => t.name === 'round-robin');
    assert.equal(tap?.stage, STAGE_BALANCE);
    await proxy.close({ drain: 0 });
  });

  it('sends traffic to backups only when no primary is available, and skips full backends', async () => {
    const proxy = createProxy(
      {
        backends: [
          { id: 'a', url: 'ws://127.0.0.1:1', maxConnections: 1 },
          { id: 'b', url: 'ws://127.0.0.1:2' },
          { id: 'spare', url: 'ws://127.0.0.1:3', backup: true },
        ],
        plugins: [roundRobin()],
      },
      { logger: createLogger({ level: 'silent' }) },
    );
    await proxy.ready();
    const a = proxy.pool.get('a')!;
    const b = proxy.pool.get('b')!;
    assert.deepEqual([await select(proxy), await select(proxy), await select(proxy)], ['a', 'b', 'a']);
    a.active = 1; // full: maxConnections 1
    assert.deepEqual([await select(proxy), await select(proxy)], ['b', 'b']);
    proxy.pool.setState(b, 'down', 'test');
    assert.equal(await select(proxy), 'spare');
    a.active = 0;
    assert.equal(await select(proxy), 'a');
    proxy.pool.setState(a, 'draining', 'test', 'admin');
    assert.equal(await select(proxy), 'spare');
    proxy.pool.setState(b, 'up', 'test');
    assert.equal(await select(proxy), 'b');
    await proxy.close({ drain: 0 });
  });

  it('is the default balancer of a proxy whose config names none, with no package to resolve', async () => {
    // A folder with no node_modules: only @wslb/core itself is at hand.
    const bare = mkdtempSync(join(tmpdir(), 'wslb-bare-'));
    try {
      const proxy = createProxy(
        {
          backends: [
            { id: 'a', url: 'ws://127.0.0.1:1', weight: 2 },
            { id: 'b', url: 'ws://127.0.0.1:2' },
          ],
          pluginBase: bare,
        },
        { logger: createLogger({ level: 'silent' }) },
      );
      await proxy.ready();
      assert.deepEqual(
        proxy.plugins.map((p) => p.name),
        ['round-robin'],
      );
      const picks = [];
      for (let i = 0; i < 6; i++) picks.push(await select(proxy));
      assert.deepEqual(picks, ['a', 'b', 'a', 'a', 'b', 'a']);
      await proxy.close({ drain: 0 });
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });
});
