import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import {
  type TestProxy,
  assertNoLeakedHandles,
  createCleanup,
  openClient,
  startCluster,
  waitFor,
} from '@wslb/testing';
import roundRobin from '../src/index.js';

/**
 * The backend of each of `count` sockets opened one after another; each is closed, and the proxy
 * has counted it closed, before the next opens.
 */
async function sequence(proxy: TestProxy, count: number): Promise<string[]> {
  const order: string[] = [];
  for (let i = 0; i < count; i++) {
    const before = proxy.proxy.connections.active;
    const client = await openClient(proxy.url);
    order.push(client.backend ?? '?');
    client.ws.terminate();
    await waitFor(() => proxy.proxy.connections.active === before, { message: 'socket closed' });
  }
  return order;
}

describe('round-robin over a changing pool', { timeout: 30_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('interleaves weights 5,1,1 as nginx does, through a real proxy', async () => {
    const cluster = cleanup.add(
      await startCluster({
        backends: [{ id: 'a' }, { id: 'b' }, { id: 'c' }],
        backendOptions: { a: { weight: 5 } },
        plugins: [roundRobin()],
      }),
    );
    assert.deepEqual(await sequence(cluster, 7), ['a', 'a', 'b', 'a', 'c', 'a', 'a']);
  });

  it('skips down, draining and full backends and takes them back', async () => {
    const cluster = cleanup.add(
      await startCluster({
        backends: 4,
        backendOptions: { b4: { maxConnections: 1 } },
        plugins: [roundRobin()],
      }),
    );
    cluster.down('b1');
    cluster.drain('b2');
    const held = await cluster.fill('b4');
    assert.deepEqual(await sequence(cluster, 3), ['b3', 'b3', 'b3']);
    cluster.up('b1');
    cluster.enable('b2');
    held[0]!.ws.terminate();
    await waitFor(() => cluster.backend('b4').active === 0, { message: 'b4 free' });
    const after = await sequence(cluster, 8);
    assert.deepEqual([...new Set(after)].sort(), ['b1', 'b2', 'b3', 'b4']);
    assert.equal(after.filter((id) => id === 'b4').length, 2);
  });

  it('answers 503 when every backend is out, and serves again once one is back', async () => {
    const cluster = cleanup.add(await startCluster({ backends: 2, plugins: [roundRobin()] }));
    cluster.down('b1');
    cluster.drain('b2');
    await assert.rejects(openClient(cluster.url), (err: Error & { status?: number }) => err.status === 503);
    cluster.enable('b2');
    assert.deepEqual(await sequence(cluster, 2), ['b2', 'b2']);
  });
});
