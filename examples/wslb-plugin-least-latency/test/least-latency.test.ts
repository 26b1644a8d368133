import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { type Plugin, validatePluginOptions } from '@wslb/core';
import {
  assertNoLeakedHandles,
  createCleanup,
  openClient,
  startCluster,
  upgradeRequest,
  waitFor,
  webSocketKey,
} from '@wslb/testing';
import leastLatency, { type LatencySample, getHooks, schema } from '../src/index.js';

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A plugin that collects what least-latency publishes through its hooks. */
function sampleCollector(samples: LatencySample[]): Plugin {
  return {
    name: 'sample-collector',
    dependencies: ['least-latency'],
    apply(proxy) {
      getHooks(proxy).sample.tap('sample-collector', (sample) => void samples.push(sample));
    },
  };
}

describe('wslb-plugin-least-latency', { timeout: 30_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('measures each backend once, then keeps new sockets off the slow one', async () => {
    const plugin = leastLatency();
    const cluster = cleanup.add(
      await startCluster({
        backends: [{ id: 'b1' }, { id: 'slow', upgradeDelayMs: 300 }, { id: 'b3' }],
        plugins: [plugin],
      }),
    );
    const { perBackend } = await cluster.open(12);
    // The first three sockets measure the three backends; the slow one gets no other.
    assert.equal(perBackend.slow, 1);
    assert.equal((perBackend.b1 ?? 0) + (perBackend.b3 ?? 0), 11);
    assert.ok(plugin.estimate('slow')! >= 250, `slow estimated at ${plugin.estimate('slow')} ms`);
    assert.ok(
      plugin.estimate('b1')! < plugin.estimate('slow')!,
      "plugin.estimate('b1')! < plugin.estimate('slow')!",
    );
  });

  it('spreads equally fast backends by their live connections', async () => {
    // Equal upgrade delays well above scheduling noise: one late sample cannot make a backend
    // look several times slower than the other.
    const cluster = cleanup.add(
      await startCluster({
        backends: [
          { id: 'b1', upgradeDelayMs: 40 },
          { id: 'b2', upgradeDelayMs: 40 },
        ],
        plugins: [leastLatency()],
      }),
    );
    // Sockets stay open, so each one adds to its backend's load.
    const { perBackend } = await cluster.open(10);
    assert.ok((perBackend.b1 ?? 0) >= 2 && (perBackend.b2 ?? 0) >= 2, JSON.stringify(perBackend));
  });

  it('measures a backend again once it is back up', async () => {
    const plugin = leastLatency();
    const cluster = cleanup.add(
      await startCluster({
        backends: [{ id: 'fast' }, { id: 'slow', upgradeDelayMs: 300 }],
        plugins: [plugin],
      }),
    );
    await cluster.open(2);
    assert.equal((await cluster.open(3)).perBackend.fast, 3);
    // The slow process is restarted and fast now: down, then up, forgets the old estimate.
    cluster.down('slow');
    cluster.echo('slow').upgradeDelayMs = 0;
    cluster.up('slow');
    assert.equal(plugin.estimate('slow'), undefined);
    assert.equal((await openClient(cluster.url)).backend, 'slow');
    assert.ok(plugin.estimate('slow')! < 250, "plugin.estimate('slow')! < 250");
  });

  it('never chooses a draining, down or full backend', async () => {
    const cluster = cleanup.add(
      await startCluster({
        backends: 4,
        backendOptions: { b3: { maxConnections: 1 } },
        plugins: [leastLatency()],
      }),
    );
    cluster.drain('b1');
    cluster.down('b2');
    await cluster.fill('b3');
    assert.deepEqual((await cluster.open(5)).perBackend, { b4: 5 });
  });

  it('penalizes a backend that refuses connections and one that answers 5xx', async () => {
    const samples: LatencySample[] = [];
    const cluster = cleanup.add(
      await startCluster({
        backends: [{ id: 'ok' }, { id: 'erroring', upgradeStatus: 503 }],
        plugins: [leastLatency({ failurePenalty: 7000 }), sampleCollector(samples)],
      }),
    );
    const dead = await deadPort();
    await cluster.proxy.reload({
      ...cluster.proxy.config,
      backends: [...cluster.proxy.config.backends, { id: 'dead', url: `ws://127.0.0.1:${dead}` }],
    });
    const answers: number[] = [];
    for (let i = 0; i < 8; i++) {
      const answer = await upgradeRequest(cluster.url, {
        'sec-websocket-key': webSocketKey(),
        'sec-websocket-version': '13',
      }).catch(() => ({ status: 101 }));
      answers.push(answer.status);
    }
    // Each bad backend is tried once (then it carries the penalty); every socket after that is fine.
    assert.equal(cluster.backend('dead').failures, 1);
    assert.equal(answers.filter((s) => s === 503).length, 1, `answers ${answers}`);
    const penalties = samples.filter((s) => s.failed).map((s) => `${s.backend.id} ${s.ms}`);
    assert.deepEqual(penalties.sort(), ['dead 7000', 'erroring 7000']);
    assert.ok(
      samples.some((s) => s.backend.id === 'ok' && !s.failed && s.ms >= 0),
      "samples.some((s) => s.backend.id === 'ok' && !s.failed && s.ms >= 0)",
    );
  });

  it('penalizes a backend that never answers the upgrade', async () => {
    const samples: LatencySample[] = [];
    const cluster = cleanup.add(
      await startCluster({
        backends: [{ id: 'hangs', upgradeDelayMs: 60_000 }],
        plugins: [leastLatency({ failurePenalty: 1234 }), sampleCollector(samples)],
        timeouts: { handshake: 200 },
      }),
    );
    const answer = await upgradeRequest(cluster.url, {
      'sec-websocket-key': webSocketKey(),
      'sec-websocket-version': '13',
    });
    assert.equal(answer.status, 504);
    await waitFor(() => samples.length === 1, { message: 'a penalty sample' });
    assert.deepEqual(
      samples.map((s) => [s.backend.id, s.ms, s.failed]),
      [['hangs', 1234, true]],
    );
  });

  it('keeps its estimates across a reload; reconfigure() takes new options', async () => {
    const plugin = leastLatency({ decay: 10_000 });
    const cluster = cleanup.add(
      await startCluster({
        backends: [{ id: 'fast' }, { id: 'slow', upgradeDelayMs: 300 }],
        plugins: [plugin],
      }),
    );
    await cluster.open(2);
    const before = plugin.estimate('slow')!;
    await cluster.proxy.reload({ ...cluster.proxy.config, plugins: [plugin] });
    assert.ok(plugin.estimate('slow')! > 0.9 * before, 'estimate kept');
    assert.equal((await cluster.open(2)).perBackend.fast, 2);
    // A 1 ms time constant: 20 ms later the old reading is worth nothing.
    await plugin.reconfigure!({ decay: 1 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(plugin.estimate('slow')! < 1, `estimate ${plugin.estimate('slow')}`);
  });

  it('validates its options with its schema, as wslb does before calling the factory', () => {
    assert.deepEqual(
      validatePluginOptions(schema, { decay: 5000, failurePenalty: 0, measureHttp: true }, '/options'),
      [],
    );
    assert.deepEqual(validatePluginOptions(schema, { decay: 0, colour: 'red' }, '/plugins/0/options'), [
      { path: '/plugins/0/options', message: 'unknown property "colour"' },
      { path: '/plugins/0/options/decay', message: 'must be >= 1' },
    ]);
  });
});
