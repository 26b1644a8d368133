import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type CloseInfo, type ConnectionContext, type Plugin, STAGE_OVERRIDE, WslbError } from '@wslb/core';
import roundRobin from '@wslb/round-robin';
import {
  createCleanup,
  assertNoLeakedHandles,
  closeAll,
  closed,
  openClient,
  roundTrip,
  startEchoBackends,
  startProxy,
  upgradeRequest,
  waitFor,
  webSocketKey,
} from '@wslb/testing';

const upgradeHeaders = () => ({ 'sec-websocket-key': webSocketKey(), 'sec-websocket-version': '13' });

describe('hooks', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  async function setup(plugin: Plugin, extra: { timeouts?: { hook?: number } } = {}) {
    const backends = await startEchoBackends(2);
    cleanup.defer(async () => {
      await Promise.all(backends.map((b) => b.close()));
    });
    const proxy = await startProxy({
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      plugins: [plugin, roundRobin()],
      ...extra,
    });
    cleanup.defer(() => proxy.close());
    return { backends, proxy };
  }

  it('freezes the hooks object', async () => {
    const { proxy } = await setup({ name: 'noop', apply() {} });
    assert.ok(Object.isFrozen(proxy.proxy.hooks), 'Object.isFrozen(proxy.proxy.hooks)');
    assert.throws(() => {
      (proxy.proxy.hooks as unknown as Record<string, unknown>).connect = null;
    });
  });

  it('runs hooks in connection order with the context and close info', async () => {
    const order: string[] = [];
    let info: CloseInfo | undefined;
    let seenCtx: ConnectionContext | undefined;
    const { proxy } = await setup({
      name: 'recorder',
      apply(p) {
        p.hooks.connect.tap('recorder', (ctx) => {
          order.push(`connect:${ctx.kind}`);
          seenCtx = ctx;
          return undefined;
        });
        p.hooks.select.tap({ name: 'recorder', stage: STAGE_OVERRIDE }, (_ctx, candidates) => {
          order.push(`select:${candidates.length}`);
          return undefined;
        });
        p.hooks.handshake.tap('recorder', (ctx, req) => {
          order.push(`handshake:${ctx.backend?.id}`);
          req.headers['x-added-by-tap'] = 'yes';
        });
        p.hooks.response.tap('recorder', (_ctx, res) => {
          order.push(`response:${res.status}`);
          res.headers['x-response-tap'] = 'seen';
        });
        p.hooks.open.tap('recorder', () => order.push('open'));
        p.hooks.close.tap('recorder', (_ctx, i) => {
          order.push('close');
          info = i;
        });
      },
    });
    const client = await openClient(`${proxy.url}/ordered`);
    assert.equal(client.headers['x-response-tap'], 'seen');
    await roundTrip(client.ws, 'ping');
    await closeAll([client]);
    await waitFor(() => info);
    assert.deepEqual(order, [
      'connect:ws',
      'select:2',
      `handshake:${client.backend}`,
      'response:101',
      'open',
      'close',
    ]);
    assert.equal(info!.backend?.id, client.backend);
    assert.equal(info!.status, 101);
    assert.ok(info!.bytesIn > 0 && info!.bytesOut > 0, 'info!.bytesIn > 0 && info!.bytesOut > 0');
    assert.equal(seenCtx!.clientAddress, '127.0.0.1');
    assert.equal(seenCtx!.request?.url, '/ordered');
  });

  it('lets a connect tap reject with its status and headers', async () => {
    const { proxy, backends } = await setup({
      name: 'deny',
      apply(p) {
        p.hooks.connect.tap('deny', () => ({
          status: 401,
          reason: 'token required',
          headers: { 'www-authenticate': 'Bearer' },
        }));
      },
    });
    const answer = await upgradeRequest(proxy.url, upgradeHeaders());
    assert.equal(answer.status, 401);
    assert.equal(answer.body.trim(), 'token required');
    assert.equal(answer.headers['www-authenticate'], 'Bearer');
    assert.equal(backends[0]!.upgrades + backends[1]!.upgrades, 0);
  });

  it('lets a handshake tap reject by throwing a WslbError with a status', async () => {
    const { proxy } = await setup({
      name: 'gate',
      apply(p) {
        p.hooks.handshake.tapPromise('gate', async () => {
          throw new WslbError('WSLB_ERR_REJECTED', 'not today', { status: 451 });
        });
      },
    });
    const answer = await upgradeRequest(proxy.url, upgradeHeaders());
    assert.equal(answer.status, 451);
    assert.equal(proxy.proxy.connections.active, 0);
  });

  it('honours a WslbError thrown by a plugin that carries its own copy of @wslb/core', async () => {
    // A second copy of the package's errors module, as a plugin installed with its own core has.
    const copyDir = mkdtempSync(join(tmpdir(), 'wslb-core-copy-'));
    cleanup.defer(() => rmSync(copyDir, { recursive: true, force: true }));
    const source = fileURLToPath(new URL('errors.js', import.meta.resolve('@wslb/core')));
    copyFileSync(source, join(copyDir, 'errors.js'));
    const copy = (await import(pathToFileURL(join(copyDir, 'errors.js')).href)) as {
      WslbError: typeof WslbError;
    };
    assert.notEqual(copy.WslbError, WslbError, 'another class than the one of the proxy');
    const { proxy } = await setup({
      name: 'gate',
      apply(p) {
        p.hooks.handshake.tapPromise('gate', async () => {
          throw new copy.WslbError('GATE_DENIED', 401, 'token required');
        });
      },
    });
    const answer = await upgradeRequest(proxy.url, upgradeHeaders());
    assert.equal(answer.status, 401);
    assert.equal(answer.body.trim(), 'token required');
    assert.ok(new copy.WslbError('X', 400) instanceof WslbError, 'instanceof across copies');
    class Custom extends WslbError {}
    assert.ok(!(new WslbError('X', 400) instanceof Custom), 'a subclass still checks its prototype');
  });

  it('takes the status as the second argument: WslbError(code, status) and (code, status, message)', async () => {
    let round = 0;
    const { proxy } = await setup({
      name: 'gate',
      apply(p) {
        p.hooks.handshake.tapPromise('gate', async () => {
          round++;
          if (round === 1) throw new WslbError('GATE_DENIED', 401);
          throw new WslbError('GATE_DENIED', 403, 'members only');
        });
      },
    });
    const first = await upgradeRequest(proxy.url, upgradeHeaders());
    assert.equal(first.status, 401);
    assert.equal(first.body.trim(), 'Unauthorized', 'a code of its own answers with the reason phrase');
    const second = await upgradeRequest(proxy.url, upgradeHeaders());
    assert.equal(second.status, 403);
    assert.equal(second.body.trim(), 'members only');
  });

  for (const hook of ['connect', 'select', 'handshake', 'response'] as const) {
    it(`fails only the connection when a ${hook} tap throws (500), and the next one works`, async () => {
      let calls = 0;
      const { proxy } = await setup({
        name: 'faulty',
        apply(p) {
          const boom = () => {
            calls++;
            if (calls === 1) throw new Error(`${hook} exploded`);
            return undefined;
          };
          if (hook === 'select') p.hooks.select.tap({ name: 'faulty', stage: STAGE_OVERRIDE }, boom);
          else if (hook === 'connect') p.hooks.connect.tap('faulty', boom);
          else if (hook === 'handshake') p.hooks.handshake.tap('faulty', boom);
          else p.hooks.response.tap('faulty', boom);
        },
      });
      const errors: string[] = [];
      proxy.proxy.hooks.error.tap('test', (_ctx, err) => errors.push(err.code));
      const answer = await upgradeRequest(proxy.url, upgradeHeaders());
      assert.equal(answer.status, 500);
      assert.doesNotMatch(answer.body, /exploded/, 'no internal detail reaches the client');
      assert.deepEqual(errors, ['WSLB_ERR_TAP_FAILED']);
      const client = await openClient(proxy.url);
      assert.equal((await roundTrip(client.ws, 'still alive')).data.toString(), 'still alive');
      await closeAll([client]);
      await waitFor(() => proxy.proxy.connections.active === 0);
      assert.ok(
        proxy.proxy.pool.list().every((b) => b.active === 0),
        'proxy.proxy.pool.list().every((b) => b.active === 0)',
      );
    });
  }

  it('names who ended a WebSocket by its close handshake: the client or the backend', async () => {
    const reasons: string[] = [];
    const { proxy, backends } = await setup({
      name: 'closes',
      apply(p) {
        p.hooks.close.tap('closes', (_ctx, info) => void reasons.push(info.reason));
      },
    });
    const byClient = await openClient(proxy.url);
    await roundTrip(byClient.ws, 'hello');
    byClient.ws.close(1000);
    await closed(byClient.ws);
    await waitFor(() => reasons.length === 1, { message: 'the first close' });
    // The server sends its close frame first this time.
    const byBackend = await openClient(proxy.url);
    await roundTrip(byBackend.ws, 'hello');
    for (const b of backends) b.closeClients(1000);
    await closed(byBackend.ws);
    await waitFor(() => reasons.length === 2, { message: 'the second close' });
    assert.deepEqual(reasons, ['client-closed', 'backend-closed']);
  });

  it('closes with 1011 when an open tap throws, and keeps the others', async () => {
    let calls = 0;
    const closes: CloseInfo[] = [];
    const { proxy } = await setup({
      name: 'faulty-open',
      apply(p) {
        p.hooks.open.tap('faulty-open', () => {
          calls++;
          if (calls === 2) throw new Error('open exploded');
        });
        p.hooks.close.tap('faulty-open', (_ctx, info) => void closes.push(info));
      },
    });
    const first = await openClient(proxy.url);
    const second = await openClient(proxy.url);
    assert.equal((await closed(second.ws)).code, 1011);
    // The close taps learn why: the tap's fault, not a backend that closed.
    assert.equal(closes.length, 1);
    assert.equal(closes[0]!.reason, 'error');
    assert.equal(closes[0]!.error?.code, 'WSLB_ERR_TAP_FAILED');
    assert.equal((await roundTrip(first.ws, 'first lives')).data.toString(), 'first lives');
    await closeAll([first]);
    await waitFor(() => proxy.proxy.connections.active === 0);
  });

  it('does not let a throwing close or error tap escape', async () => {
    const { proxy } = await setup({
      name: 'faulty-close',
      apply(p) {
        p.hooks.close.tap('faulty-close', () => {
          throw new Error('close exploded');
        });
        p.hooks.error.tap('faulty-close', () => {
          throw new Error('error exploded');
        });
      },
    });
    const client = await openClient(proxy.url);
    await closeAll([client]);
    await waitFor(() => proxy.proxy.connections.active === 0);
    const again = await openClient(proxy.url);
    await closeAll([again]);
  });

  it('fails a connection whose tap hangs past timeouts.hook with 500', async () => {
    const { proxy } = await setup(
      {
        name: 'stuck',
        apply(p) {
          p.hooks.connect.tapPromise('stuck', (ctx) =>
            ctx.request?.url === '/stuck' ? new Promise(() => {}) : Promise.resolve(undefined),
          );
        },
      },
      { timeouts: { hook: 200 } },
    );
    const errors: string[] = [];
    proxy.proxy.hooks.error.tap('test', (_ctx, err) => errors.push(err.code));
    const answer = await upgradeRequest(`${proxy.url}/stuck`, upgradeHeaders());
    assert.equal(answer.status, 500);
    assert.deepEqual(errors, ['WSLB_ERR_TAP_TIMEOUT']);
    const client = await openClient(proxy.url);
    await closeAll([client]);
  });

  it('rejects a select tap that returns something that is not an available backend', async () => {
    const { proxy } = await setup({
      name: 'liar',
      apply(p) {
        p.hooks.select.tap({ name: 'liar', stage: STAGE_OVERRIDE }, () => ({ id: 'fake' }) as never);
      },
    });
    const answer = await upgradeRequest(proxy.url, upgradeHeaders());
    assert.equal(answer.status, 500);
  });
});

describe('refused connections', { timeout: 30_000 }, () => {
  it('reach the close hook and the access log, and leave the counters alone', async () => {
    const backends = await startEchoBackends(1);
    const proxy = await startProxy({
      backends: [{ id: 'b1', url: backends[0]!.url }],
      limits: { perClient: 1 },
    });
    try {
      const closes: CloseInfo[] = [];
      proxy.proxy.hooks.close.tap('test', (_ctx, info) => void closes.push(info));
      const bad = await upgradeRequest(proxy.url, {
        'sec-websocket-key': 'nope',
        'sec-websocket-version': '13',
      });
      assert.equal(bad.status, 400);
      const first = await openClient(proxy.url);
      const second = await upgradeRequest(proxy.url, upgradeHeaders());
      assert.equal(second.status, 429);
      assert.deepEqual(
        closes.map((c) => [c.reason, c.status, c.error?.code]),
        [
          ['rejected', 400, 'WSLB_ERR_BAD_WEBSOCKET_KEY'],
          ['rejected', 429, 'WSLB_ERR_TOO_MANY_PER_CLIENT'],
        ],
      );
      assert.equal(proxy.proxy.connections.active, 1);
      await closeAll([first]);
      await waitFor(() => proxy.proxy.connections.active === 0);
    } finally {
      await proxy.close();
      await Promise.all(backends.map((b) => b.close()));
    }
    await assertNoLeakedHandles();
  });
});
