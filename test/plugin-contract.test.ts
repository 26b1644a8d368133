import assert from 'node:assert/strict';
import { request } from 'node:http';
import { afterEach, describe, it } from 'node:test';
import {
  type CloseInfo,
  type ConnectionContext,
  CORE_VERSION,
  type Plugin,
  type PluginHost,
  STAGE_BALANCE,
  STAGE_OVERRIDE,
  SyncHook,
  type WslbError,
  createLogger,
  createPluginHooks,
  createProxy,
} from '@wslb/core';
import healthCheck, { HealthCheckPlugin } from '@wslb/health-check';
import roundRobin from '@wslb/round-robin';
import {
  assertNoLeakedHandles,
  closed,
  createCleanup,
  openClient,
  roundTrip,
  startCluster,
  upgradeRequest,
  waitFor,
  webSocketKey,
} from '@wslb/testing';

const silent = { logger: createLogger({ level: 'silent' }) };
const backends = [{ id: 'b1', url: 'ws://127.0.0.1:1' }];
const upgradeHeaders = (): Record<string, string> => ({
  'sec-websocket-key': webSocketKey(),
  'sec-websocket-version': '13',
});

/** A plugin that taps nothing. */
const named = (name: string, extra: Partial<Plugin> = {}): Plugin => ({ name, apply() {}, ...extra });

/** Resolves when `promise` rejects with a WslbError of `code`; returns it. */
async function rejectsWith(promise: Promise<unknown>, code: string): Promise<WslbError> {
  let caught: unknown;
  await assert.rejects(promise, (err: unknown) => {
    caught = err;
    return (err as WslbError).code === code;
  });
  return caught as WslbError;
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('plugin registration checks', { timeout: 30_000 }, () => {
  afterEach(() => assertNoLeakedHandles());

  it('refuses two plugins with the same name (WSLB_ERR_PLUGIN_DUPLICATE)', async () => {
    const proxy = createProxy({ backends, plugins: [named('auth'), roundRobin(), named('auth')] }, silent);
    const err = await rejectsWith(proxy.ready(), 'WSLB_ERR_PLUGIN_DUPLICATE');
    assert.match(err.message, /plugin "auth" is registered twice/);
  });

  it('refuses a plugin whose declared dependency is missing (WSLB_ERR_PLUGIN_DEPENDENCY)', async () => {
    const proxy = createProxy(
      { backends, plugins: [named('audit', { dependencies: ['auth'] }), roundRobin()] },
      silent,
    );
    const err = await rejectsWith(proxy.ready(), 'WSLB_ERR_PLUGIN_DEPENDENCY');
    assert.match(err.message, /plugin "audit" needs plugin "auth"/);
  });

  it('accepts a dependency registered in any order', async () => {
    const applied: string[] = [];
    const track = (name: string, extra: Partial<Plugin> = {}): Plugin =>
      named(name, { ...extra, apply: () => void applied.push(name) });
    const proxy = createProxy(
      { backends, plugins: [track('audit', { dependencies: ['auth'] }), track('auth'), roundRobin()] },
      silent,
    );
    await proxy.ready();
    assert.deepEqual(applied, ['audit', 'auth']);
    assert.deepEqual(
      proxy.plugins.map((p) => p.name),
      ['audit', 'auth', 'round-robin'],
    );
    await proxy.close({ drain: 0 });
  });

  it('refuses a plugin that needs another core version (WSLB_ERR_PLUGIN_CORE_VERSION)', async () => {
    const proxy = createProxy({ backends, plugins: [named('future', { core: '>=99.0.0' })] }, silent);
    const err = await rejectsWith(proxy.ready(), 'WSLB_ERR_PLUGIN_CORE_VERSION');
    assert.match(err.message, new RegExp(`requires @wslb/core >=99.0.0, this is ${CORE_VERSION}`));
    const fits = createProxy({ backends, plugins: [named('today', { core: `^${CORE_VERSION}` })] }, silent);
    await fits.ready();
    await fits.close({ drain: 0 });
  });

  it('fails startup when a plugin apply() hangs past timeouts.plugin (WSLB_ERR_PLUGIN_TIMEOUT)', async () => {
    const stuck: Plugin = { name: 'stuck', apply: () => new Promise<void>(() => {}) };
    const proxy = createProxy({ backends, plugins: [stuck], timeouts: { plugin: 100 } }, silent);
    const err = await rejectsWith(proxy.listen(), 'WSLB_ERR_PLUGIN_TIMEOUT');
    assert.match(err.message, /plugin "stuck" did not finish apply\(\) within 100 ms/);
  });

  it('refuses a plugin object without a name as config, not as a plugin', () => {
    const nameless = { apply() {} } as unknown as Plugin;
    assert.throws(
      () => createProxy({ backends, plugins: [nameless] }, silent),
      (err: WslbError) => err.code === 'WSLB_ERR_CONFIG_INVALID',
    );
  });

  it('checks the whole plugin set on reload and keeps the running one when it fails', async () => {
    const proxy = createProxy({ backends, plugins: [named('auth'), roundRobin()] }, silent);
    await proxy.ready();
    await rejectsWith(
      proxy.reload({
        backends: [...backends, { id: 'b2', url: 'ws://127.0.0.1:2' }],
        plugins: [named('audit', { dependencies: ['auth'] }), roundRobin()],
      }),
      'WSLB_ERR_PLUGIN_DEPENDENCY',
    );
    assert.deepEqual(
      proxy.plugins.map((p) => p.name),
      ['auth', 'round-robin'],
    );
    assert.equal(proxy.pool.size, 1, 'the backends did not change either');
    await proxy.close({ drain: 0 });
  });

  it('lets a reload name round-robin explicitly where it was implicit', async () => {
    const proxy = createProxy({ backends }, silent);
    await proxy.ready();
    assert.deepEqual(
      proxy.plugins.map((p) => p.name),
      ['round-robin'],
    );
    await proxy.reload({ backends, plugins: [roundRobin()] });
    assert.deepEqual(
      proxy.plugins.map((p) => p.name),
      ['round-robin'],
    );
    await proxy.close({ drain: 0 });
  });
});

describe('taps that hang or throw', { timeout: 30_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  /** A plugin whose tap on `hook` never settles for requests to /hang, and records close infos. */
  function hanging(hook: 'connect' | 'select' | 'handshake' | 'response', closes: CloseInfo[]): Plugin {
    return {
      name: `hang-${hook}`,
      apply(proxy) {
        const hang = (ctx: ConnectionContext): Promise<undefined> =>
          ctx.request?.url === '/hang' ? new Promise(() => {}) : Promise.resolve(undefined);
        if (hook === 'connect') proxy.hooks.connect.tapPromise('hang', hang);
        if (hook === 'select') proxy.hooks.select.tapPromise({ name: 'hang', stage: STAGE_OVERRIDE }, hang);
        if (hook === 'handshake') proxy.hooks.handshake.tapPromise('hang', async (ctx) => hang(ctx));
        if (hook === 'response') proxy.hooks.response.tapPromise('hang', async (ctx) => hang(ctx));
        proxy.hooks.close.tap('hang', (_ctx, info) => void closes.push(info));
      },
    };
  }

  for (const hook of ['connect', 'select', 'handshake', 'response'] as const) {
    it(`fails only its connection when a ${hook} tap hangs past timeouts.hook (WSLB_ERR_TAP_TIMEOUT)`, async () => {
      const closes: CloseInfo[] = [];
      const cluster = cleanup.add(
        await startCluster({ backends: 2, plugins: [hanging(hook, closes)], timeouts: { hook: 150 } }),
      );
      const errors: string[] = [];
      cluster.proxy.hooks.error.tap('test', (_ctx, err) => void errors.push(err.code));
      const answer = await upgradeRequest(`${cluster.url}/hang`, upgradeHeaders());
      assert.equal(answer.status, 500);
      // The client reads the catalog's words; the detail goes to the logs and the close info.
      assert.equal(answer.body.trim(), 'A plugin did not answer in time');
      await waitFor(() => closes.length === 1, { message: 'close hook' });
      assert.equal(closes[0]!.error?.code, 'WSLB_ERR_TAP_TIMEOUT');
      assert.match(closes[0]!.error!.message, new RegExp(`${hook} hook did not finish within 150 ms`));
      assert.equal(closes[0]!.reason, 'timeout');
      assert.deepEqual(errors, ['WSLB_ERR_TAP_TIMEOUT']);
      // No socket to a backend stays open, and the next connection is served.
      await waitFor(() => cluster.backends.every((b) => b.clients.size === 0), { message: 'no tunnel' });
      const client = await openClient(`${cluster.url}/fine`);
      assert.equal((await roundTrip(client.ws, 'after')).data.toString(), 'after');
      assert.equal(cluster.proxy.connections.active, 1);
    });
  }

  it('answers 500 with WSLB_ERR_TAP_FAILED when a select tap throws, and keeps serving', async () => {
    const thrower: Plugin = {
      name: 'thrower',
      apply(proxy) {
        proxy.hooks.select.tap({ name: 'thrower', stage: STAGE_OVERRIDE }, (ctx) => {
          if (ctx.request?.url === '/boom') throw new Error('kaboom');
          return undefined;
        });
      },
    };
    const cluster = cleanup.add(await startCluster({ backends: 1, plugins: [thrower] }));
    const codes: string[] = [];
    const messages: string[] = [];
    cluster.proxy.hooks.error.tap('test', (_ctx, err) => {
      codes.push(err.code);
      messages.push(err.message);
    });
    const answer = await upgradeRequest(`${cluster.url}/boom`, upgradeHeaders());
    assert.equal(answer.status, 500);
    // The tap's own words stay in the logs; the client reads the catalog's.
    assert.equal(answer.body.trim(), 'A plugin failed');
    assert.deepEqual(codes, ['WSLB_ERR_TAP_FAILED']);
    assert.match(messages[0]!, /select hook failed: kaboom/);
    const http = await httpGet(`${cluster.httpUrl}/boom`);
    assert.equal(http.status, 500);
    assert.equal((await openClient(cluster.url)).backend, 'b1');
  });

  it('closes a tunnel with 1011 when an open tap throws', async () => {
    const broken: Plugin = {
      name: 'broken-open',
      apply(proxy) {
        proxy.hooks.open.tap('broken-open', () => {
          throw new Error('open failed');
        });
      },
    };
    const cluster = cleanup.add(await startCluster({ backends: 1, plugins: [broken] }));
    const client = await openClient(cluster.url).catch(() => undefined);
    if (client) assert.equal((await closed(client.ws)).code, 1011);
    await waitFor(() => cluster.proxy.connections.active === 0, { message: 'connection finished' });
  });
});

describe('hook order and arguments', { timeout: 30_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  /** Records every connection hook with the context's kind and backend at that point. */
  function recorder(events: string[]): Plugin {
    return {
      name: 'recorder',
      apply(proxy) {
        const h = proxy.hooks;
        h.connect.tap('recorder', (ctx) => void events.push(`connect ${ctx.kind} ${ctx.backend?.id}`));
        h.select.tap({ name: 'recorder', stage: STAGE_OVERRIDE }, (ctx, candidates) => {
          events.push(`select ${ctx.kind} [${candidates.map((b) => b.id)}]`);
          return undefined;
        });
        h.handshake.tap('recorder', (ctx, upstream) => {
          events.push(`handshake ${ctx.kind} ${ctx.backend?.id} ${upstream.path}`);
          upstream.headers['x-tapped'] = 'yes';
        });
        h.response.tap('recorder', (ctx, response) => {
          events.push(`response ${ctx.kind} ${response.status}`);
          response.headers['x-seen-by'] = 'recorder';
        });
        h.open.tap('recorder', (ctx) => void events.push(`open ${ctx.kind} ${ctx.backend?.id}`));
        h.close.tap('recorder', (ctx, info) => {
          events.push(`close ${ctx.kind} ${info.backend?.id} ${info.status} ${info.reason}`);
        });
      },
    };
  }

  it('runs connect, select, handshake, response, open, close for a WebSocket', async () => {
    const events: string[] = [];
    const cluster = cleanup.add(
      await startCluster({ backends: 2, plugins: [recorder(events), roundRobin()] }),
    );
    const client = await openClient(`${cluster.url}/chat?room=1`);
    assert.equal(client.headers['x-seen-by'], 'recorder');
    assert.equal(cluster.echo('b1').seen.at(-1)!.headers['x-tapped'], 'yes');
    client.ws.terminate();
    await waitFor(() => events.some((e) => e.startsWith('close')), { message: 'close hook' });
    assert.deepEqual(events, [
      'connect ws undefined',
      'select ws [b1,b2]',
      'handshake ws b1 /chat?room=1',
      'response ws 101',
      'open ws b1',
      'close ws b1 101 client-closed',
    ]);
  });

  it('runs the same hooks but open for a plain HTTP request', async () => {
    const events: string[] = [];
    const cluster = cleanup.add(
      await startCluster({ backends: 1, plugins: [recorder(events), roundRobin()] }),
    );
    const answer = await httpGet(`${cluster.httpUrl}/poll?t=1`);
    assert.equal(answer.status, 200);
    await waitFor(() => events.some((e) => e.startsWith('close')), { message: 'close hook' });
    assert.deepEqual(events, [
      'connect http undefined',
      'select http [b1]',
      'handshake http b1 /poll?t=1',
      'response http 200',
      'close http b1 200 completed',
    ]);
  });

  it('runs select taps by stage: overrides before balancers, first answer wins', async () => {
    const calls: string[] = [];
    const balancer: Plugin = {
      name: 'last-one',
      apply(proxy) {
        proxy.hooks.select.tap({ name: 'last-one', stage: STAGE_BALANCE }, (_ctx, candidates) => {
          calls.push('balance');
          return candidates.at(-1);
        });
      },
    };
    const override: Plugin = {
      name: 'vip',
      apply(proxy) {
        proxy.hooks.select.tap({ name: 'vip', stage: STAGE_OVERRIDE }, (ctx, candidates) => {
          calls.push('override');
          return ctx.request?.url === '/vip' ? candidates[0] : undefined;
        });
      },
    };
    // Registered balancer first: the stage, not the order, decides.
    const cluster = cleanup.add(await startCluster({ backends: 3, plugins: [balancer, override] }));
    assert.equal((await openClient(`${cluster.url}/vip`)).backend, 'b1');
    assert.deepEqual(calls, ['override']);
    assert.equal((await openClient(`${cluster.url}/other`)).backend, 'b3');
    assert.deepEqual(calls, ['override', 'override', 'balance']);
  });
});

describe('hooks that plugins publish (createPluginHooks)', { timeout: 30_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  // A publisher: announces every backend it chose, with the connection's path.
  const chooserHooks = createPluginHooks(() => ({
    chosen: new SyncHook<[string, string]>(['backendId', 'path']),
  }));
  const publisher: Plugin = {
    name: 'chooser',
    apply(proxy: PluginHost) {
      proxy.hooks.select.tap({ name: 'chooser', stage: STAGE_BALANCE }, (ctx, candidates) => {
        const backend = candidates[0];
        if (backend) chooserHooks.of(proxy).chosen.call(backend.id, ctx.request?.url ?? '');
        return backend;
      });
    },
  };
  const listener = (name: string, seen: string[]): Plugin => ({
    name,
    apply(proxy) {
      chooserHooks.getHooks(proxy).chosen.tap(name, (id, path) => void seen.push(`${id} ${path}`));
    },
  });

  it('gives publisher and listeners one hook set per proxy, in any registration order', async () => {
    const seenA: string[] = [];
    const seenB: string[] = [];
    const a = cleanup.add(
      await startCluster({ backends: 1, plugins: [listener('early', seenA), publisher] }),
    );
    const b = cleanup.add(await startCluster({ backends: 1, plugins: [publisher, listener('late', seenB)] }));
    await openClient(`${a.url}/on-a`);
    await openClient(`${b.url}/on-b`);
    assert.deepEqual(seenA, ['b1 /on-a']);
    assert.deepEqual(seenB, ['b1 /on-b']);
    assert.equal(chooserHooks.of(a.proxy), chooserHooks.getHooks(a.proxy));
    assert.notEqual(chooserHooks.of(a.proxy), chooserHooks.of(b.proxy));
    assert.ok(Object.isFrozen(chooserHooks.of(a.proxy)), 'Object.isFrozen(chooserHooks.of(a.proxy))');
  });

  it('keeps the taps of other plugins working when a reload removes one', async () => {
    const closes: string[] = [];
    const counter: Plugin = {
      name: 'counter',
      apply(proxy) {
        proxy.hooks.close.tap('counter', (ctx) => void closes.push(ctx.request?.url ?? ''));
      },
    };
    // round-robin taps select before counter applies; removing counter must not silence it.
    const balancer = roundRobin();
    const cluster = cleanup.add(await startCluster({ backends: 2, plugins: [balancer, counter] }));
    const first = await cluster.open(2);
    assert.deepEqual(first.perBackend, { b1: 1, b2: 1 });
    await cluster.proxy.reload({ ...cluster.proxy.config, plugins: [balancer] });
    assert.deepEqual((await cluster.open(2)).perBackend, { b1: 1, b2: 1 });
    first.clients[0]!.ws.terminate();
    await waitFor(() => cluster.proxy.connections.active === 3, { message: 'one socket closed' });
    assert.deepEqual(closes, [], 'the removed plugin saw nothing');
  });

  it("turns a listener's taps into no-ops once a reload removes it", async () => {
    const seen: string[] = [];
    const watcher = listener('watcher', seen);
    const cluster = cleanup.add(await startCluster({ backends: 1, plugins: [publisher, watcher] }));
    await openClient(`${cluster.url}/before`);
    await cluster.proxy.reload({ ...cluster.proxy.config, plugins: [publisher] });
    await openClient(`${cluster.url}/after`);
    assert.deepEqual(seen, ['b1 /before']);
  });

  it("applies the same rule to a built-in plugin's hooks (health-check's results)", async () => {
    const checked: string[] = [];
    const watcher: Plugin = {
      name: 'check-watcher',
      apply(proxy) {
        HealthCheckPlugin.getHooks(proxy).check.tap(
          'check-watcher',
          (backend) => void checked.push(backend.id),
        );
      },
    };
    const health = healthCheck({ type: 'tcp', interval: 50, timeout: 200, rise: 1, fall: 1 });
    const cluster = cleanup.add(await startCluster({ backends: 1, plugins: [health, watcher] }));
    await waitFor(() => checked.length >= 2, { message: 'results reach the watcher' });
    await cluster.proxy.reload({ ...cluster.proxy.config, plugins: [health] });
    const before = checked.length;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(checked.length, before, 'the removed watcher sees no more results');
  });
});
