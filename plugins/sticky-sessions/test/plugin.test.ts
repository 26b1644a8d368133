import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Backend,
  type ConnectionContext,
  type Proxy,
  type UpstreamRequest,
  type UpstreamResponse,
  STAGE_OVERRIDE,
  createLogger,
  createProxy,
} from '@wslb/core';
import leastConnections from '@wslb/least-connections';
import roundRobin from '@wslb/round-robin';
import stickySessions, { BackendTokens, type StickySessionsOptions } from '../src/index.js';

const SECRET = 'unit-test-secret-0123456789';

async function proxyWith(
  options: StickySessionsOptions = { secret: SECRET },
  balancer = roundRobin(),
): Promise<Proxy> {
  const proxy = createProxy(
    {
      backends: [
        { id: 'a', url: 'ws://127.0.0.1:1' },
        { id: 'b', url: 'ws://127.0.0.1:2' },
        { id: 'c', url: 'ws://127.0.0.1:3' },
      ],
      plugins: [stickySessions(options), balancer],
    },
    { logger: createLogger({ level: 'silent' }) },
  );
  await proxy.ready();
  return proxy;
}

function context(
  headers: Record<string, string> = {},
  secure = false,
): ConnectionContext & { backend?: Backend } {
  return {
    id: 1,
    kind: 'http',
    clientAddress: '127.0.0.1',
    secure,
    request: { method: 'GET', url: '/', headers },
    backend: undefined,
  } as unknown as ConnectionContext & { backend?: Backend };
}

/** select, handshake and response as the core runs them for one request. */
async function exchange(
  proxy: Proxy,
  ctx: ConnectionContext & { backend?: Backend },
  backendHeaders: UpstreamResponse['headers'] = {},
): Promise<{ backend: string; upstream: UpstreamRequest; response: UpstreamResponse }> {
  const backend = (await proxy.hooks.select.promise(ctx, proxy.pool.candidates())) as Backend;
  ctx.backend = backend;
  const upstream: UpstreamRequest = {
    method: 'GET',
    path: '/',
    headers: { ...ctx.request!.headers } as UpstreamRequest['headers'],
  };
  await proxy.hooks.handshake.promise(ctx, upstream);
  const response: UpstreamResponse = { status: 200, statusMessage: 'OK', headers: { ...backendHeaders } };
  await proxy.hooks.response.promise(ctx, response);
  return { backend: backend.id, upstream, response };
}

const token = (id: string): string => new BackendTokens(SECRET).tokenOf(id);

describe('sticky-sessions plugin', { timeout: 10_000 }, () => {
  it('taps select at the override stage, before any balancer', async () => {
    const proxy = await proxyWith();
    const tap = proxy.hooks.select.taps.find((t) => t.name === 'sticky-sessions');
    assert.equal(tap?.stage, STAGE_OVERRIDE);
    assert.equal(stickySessions().balancer, undefined);
    await proxy.close({ drain: 0 });
  });

  it('sets an HttpOnly, SameSite=Lax, Path=/ cookie naming the backend on the first answer', async () => {
    const proxy = await proxyWith();
    const { backend, response } = await exchange(proxy, context());
    assert.deepEqual(response.headers['set-cookie'], [
      `wslb=${token(backend)}; Path=/; HttpOnly; SameSite=Lax`,
    ]);
    assert.equal(response.headers['cache-control'], 'private');
    await proxy.close({ drain: 0 });
  });

  it('sends a request with the cookie to its backend, strips it, and sets nothing', async () => {
    const proxy = await proxyWith();
    for (const id of ['c', 'a', 'b', 'c']) {
      const { backend, upstream, response } = await exchange(
        proxy,
        context({ cookie: `theme=dark; wslb=${token(id)}; io=xyz` }),
      );
      assert.equal(backend, id);
      assert.equal(upstream.headers.cookie, 'theme=dark; io=xyz');
      assert.equal(response.headers['set-cookie'], undefined);
      assert.equal(response.headers['cache-control'], undefined);
    }
    const { upstream } = await exchange(proxy, context({ cookie: `wslb=${token('a')}` }));
    assert.equal('cookie' in upstream.headers, false);
    await proxy.close({ drain: 0 });
  });

  it('overrides least-connections as well: the cookie wins over a lighter backend', async () => {
    const proxy = await proxyWith({ secret: SECRET }, leastConnections());
    proxy.pool.get('a')!.active = 10;
    const pinned = await exchange(proxy, context({ cookie: `wslb=${token('a')}` }));
    assert.equal(pinned.backend, 'a');
    const fresh = await exchange(proxy, context());
    assert.notEqual(fresh.backend, 'a');
    proxy.pool.get('a')!.active = 0;
    await proxy.close({ drain: 0 });
  });

  it('re-selects and re-sets when the backend is down, draining, unknown or forged', async () => {
    const proxy = await proxyWith();
    proxy.pool.setState(proxy.pool.get('a')!, 'down', 'test');
    proxy.pool.drain(proxy.pool.get('b')!);
    for (const value of [token('a'), token('b'), token('gone'), 'AAAAAAAAAAAAAAAAAAAAAA', '']) {
      const { backend, response } = await exchange(proxy, context({ cookie: `wslb=${value}` }));
      assert.equal(backend, 'c');
      assert.deepEqual(response.headers['set-cookie'], [
        `wslb=${token('c')}; Path=/; HttpOnly; SameSite=Lax`,
      ]);
    }
    await proxy.close({ drain: 0 });
  });

  it('drops a cookie of the same name set by the backend and keeps its other cookies', async () => {
    const proxy = await proxyWith();
    const { backend, response } = await exchange(proxy, context(), {
      'set-cookie': ['wslb=from-app; Path=/', 'io=abc; Path=/'],
      'cache-control': 'public, max-age=5',
    });
    assert.deepEqual(response.headers['set-cookie'], [
      'io=abc; Path=/',
      `wslb=${token(backend)}; Path=/; HttpOnly; SameSite=Lax`,
    ]);
    assert.equal(response.headers['cache-control'], 'private, max-age=5');
    const again = await exchange(proxy, context({ cookie: `wslb=${token(backend)}` }), {
      'set-cookie': 'wslb=from-app',
    });
    assert.equal(again.response.headers['set-cookie'], undefined);
    await proxy.close({ drain: 0 });
  });

  it('adds Secure behind TLS, and the configured attributes', async () => {
    const plain = await proxyWith();
    const tls = await exchange(plain, context({}, true));
    assert.match(String(tls.response.headers['set-cookie']), /; Secure; SameSite=Lax$/);
    await plain.close({ drain: 0 });

    const custom = await proxyWith({
      secret: SECRET,
      cookie: 'SRV',
      path: '/app',
      domain: 'example.test',
      maxAge: 3600,
      httpOnly: false,
      sameSite: 'None',
    });
    const { backend, response } = await exchange(custom, context());
    assert.deepEqual(response.headers['set-cookie'], [
      `SRV=${token(backend)}; Max-Age=3600; Domain=example.test; Path=/app; Secure; SameSite=None`,
    ]);
    await custom.close({ drain: 0 });
  });

  it('uses a random secret per process when none is given', async () => {
    const proxy = await proxyWith({});
    const { backend, response } = await exchange(proxy, context());
    const value = String(response.headers['set-cookie']).split(';')[0]!.slice('wslb='.length);
    assert.notEqual(value, token(backend));
    const again = await exchange(proxy, context({ cookie: `wslb=${value}` }));
    assert.equal(again.backend, backend);
    await proxy.close({ drain: 0 });
  });

  it('keeps recognising its cookies after a reload without a secret', async () => {
    const plugin = stickySessions({ cookie: 'srv' });
    const proxy = createProxy(
      {
        backends: [
          { id: 'a', url: 'ws://127.0.0.1:1' },
          { id: 'b', url: 'ws://127.0.0.1:2' },
        ],
        plugins: [plugin, roundRobin()],
      },
      { logger: createLogger({ level: 'silent' }) },
    );
    await proxy.ready();
    const first = await exchange(proxy, context());
    const cookie = String(first.response.headers['set-cookie']).split(';')[0]!;
    await plugin.reconfigure!({ cookie: 'srv', maxAge: 60 });
    for (let i = 0; i < 3; i++) {
      const again = await exchange(proxy, context({ cookie }));
      assert.equal(again.backend, first.backend);
      assert.equal(again.response.headers['set-cookie'], undefined);
    }
    await proxy.close({ drain: 0 });
  });

  it('requires a secret with several workers', async () => {
    const proxy = createProxy(
      {
        backends: [{ id: 'a', url: 'ws://127.0.0.1:1' }],
        plugins: [stickySessions(), roundRobin()],
        workers: 2,
      },
      { logger: createLogger({ level: 'silent' }) },
    );
    await assert.rejects(proxy.ready(), { code: 'WSLB_ERR_CONFIG_INVALID', message: /"secret" is required/ });
  });

  it('rejects invalid options', () => {
    assert.throws(() => stickySessions({ cookie: 'bad name' }), { code: 'WSLB_ERR_CONFIG_INVALID' });
    assert.throws(() => stickySessions({ secret: 'short' }), /secret/);
    assert.throws(() => stickySessions({ maxAge: 0 }), /maxAge/);
  });
});
