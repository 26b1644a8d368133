import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import {
  createCleanup,
  type EchoBackend,
  type OpenedClient,
  assertNoLeakedHandles,
  closeAll,
  execWslb,
  openClient,
  runWslb,
  startEchoBackends,
  writeTempConfig,
} from '@wslb/testing';
import { httpGet, setCookie } from './helpers/http.js';

const SECRET = 'e2e-sticky-secret-0123456789';

describe('sticky-sessions through the wslb binary', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  async function backends(count = 3): Promise<EchoBackend[]> {
    const started = await startEchoBackends(count);
    cleanup.defer(() => Promise.all(started.map((b) => b.close())));
    return started;
  }

  async function wslbWith(list: EchoBackend[], options: object = {}, extra: object = {}) {
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: list.map((b) => ({ id: b.id, url: b.url })),
      plugins: [{ use: 'sticky-sessions', options }, 'round-robin'],
      log: { access: false },
      ...extra,
    });
    cleanup.defer(() => wslb.stop());
    return wslb;
  }

  it('sets the cookie on the first HTTP answer, then pins every request to that backend and hides the cookie', async () => {
    const list = await backends();
    const wslb = await wslbWith(list);
    const first = await httpGet(`${wslb.httpUrl}/page`);
    const cookie = setCookie(first, 'wslb');
    assert.ok(cookie, 'the first answer sets the wslb cookie');
    // 22 base64url characters: an HMAC, no address or port in it.
    assert.match(cookie.line, /^wslb=[A-Za-z0-9_-]{22}; Path=\/; HttpOnly; SameSite=Lax$/);
    assert.equal(first.headers['cache-control'], 'private');
    const pinned = first.json().backend;
    for (let i = 0; i < 9; i++) {
      const next = await httpGet(`${wslb.httpUrl}/page/${i}`, { cookie: `theme=dark; ${cookie.pair}` });
      assert.equal(next.json().backend, pinned);
      assert.equal(next.json().headers.cookie, 'theme=dark', 'the backend never sees the wslb cookie');
      assert.equal(next.headers['set-cookie'], undefined, 'a valid cookie is not set again');
    }
  });

  it('applies the same cookie to WebSockets: set on the 101, honoured on the upgrade, stripped', async () => {
    const list = await backends();
    const wslb = await wslbWith(list);
    const first = await openClient(wslb.url);
    cleanup.defer(() => closeAll([first]));
    const cookie = setCookie(first, 'wslb');
    assert.ok(cookie, 'the 101 sets the cookie');
    const sockets: OpenedClient[] = [];
    for (let i = 0; i < 6; i++)
      sockets.push(await openClient(wslb.url, { headers: { cookie: cookie.pair } }));
    cleanup.defer(() => closeAll(sockets));
    assert.deepEqual(
      sockets.map((s) => s.backend),
      Array(6).fill(first.backend),
    );
    assert.ok(
      sockets.every((s) => setCookie(s, 'wslb') === undefined),
      "sockets.every((s) => setCookie(s, 'wslb') === undefined)",
    );
    const backend = list.find((b) => b.id === first.backend)!;
    assert.ok(
      backend.seen.filter((s) => s.kind === 'ws').every((s) => s.headers.cookie === undefined),
      "backend.seen.filter((s) => s.kind === 'ws').every((s) => s.headers.cookie === undefined)",
    );
    // A cookie from an HTTP answer pins the WebSocket of the same client as well.
    const page = await httpGet(`${wslb.httpUrl}/`);
    const ws = await openClient(wslb.url, { headers: { cookie: setCookie(page, 'wslb')!.pair } });
    cleanup.defer(() => closeAll([ws]));
    assert.equal(ws.backend, page.json().backend);
  });

  it('re-selects and re-sets when the pinned backend is dead or the cookie is forged', async () => {
    const list = await backends();
    const wslb = await wslbWith(list);
    const first = await httpGet(`${wslb.httpUrl}/`);
    const cookie = setCookie(first, 'wslb')!;
    const pinned = list.find((b) => b.id === first.json().backend)!;
    await pinned.kill();
    const moved = await httpGet(`${wslb.httpUrl}/`, { cookie: cookie.pair });
    assert.equal(moved.status, 200);
    assert.notEqual(moved.json().backend, pinned.id);
    const renewed = setCookie(moved, 'wslb');
    assert.ok(renewed && renewed.pair !== cookie.pair, 'a new cookie names the new backend');
    const after = await httpGet(`${wslb.httpUrl}/`, { cookie: renewed.pair });
    assert.equal(after.json().backend, moved.json().backend);
    // Back up: the old cookie reaches its backend again.
    await pinned.restart();
    assert.equal((await httpGet(`${wslb.httpUrl}/`, { cookie: cookie.pair })).json().backend, pinned.id);

    const forged = await httpGet(`${wslb.httpUrl}/`, { cookie: 'wslb=AAAAAAAAAAAAAAAAAAAAAA' });
    assert.ok(setCookie(forged, 'wslb'), 'a forged value is replaced');
  });

  it('shares cookies between instances with the same secret, not without one', async () => {
    const list = await backends();
    const one = await wslbWith(list, { secret: SECRET });
    const two = await wslbWith(list, { secret: SECRET });
    const first = await httpGet(`${one.httpUrl}/`);
    const cookie = setCookie(first, 'wslb')!;
    for (let i = 0; i < 4; i++) {
      const other = await httpGet(`${two.httpUrl}/`, { cookie: cookie.pair });
      assert.equal(other.json().backend, first.json().backend);
      assert.equal(setCookie(other, 'wslb'), undefined);
    }
    const own = await wslbWith(list);
    const unknown = await httpGet(`${own.httpUrl}/`, { cookie: cookie.pair });
    assert.ok(setCookie(unknown, 'wslb'), 'another per-process secret does not know the cookie');
  });

  it('takes the cookie name and attributes from the JSON config', async () => {
    const list = await backends();
    const wslb = await wslbWith(list, {
      cookie: 'SRV',
      path: '/app',
      maxAge: 600,
      sameSite: 'Strict',
      secure: true,
    });
    const answer = await httpGet(`${wslb.httpUrl}/app/`);
    const cookie = setCookie(answer, 'SRV');
    assert.ok(cookie, 'cookie');
    assert.match(
      cookie.line,
      /^SRV=[A-Za-z0-9_-]{22}; Max-Age=600; Path=\/app; HttpOnly; Secure; SameSite=Strict$/,
    );
    const again = await httpGet(`${wslb.httpUrl}/app/x`, { cookie: cookie.pair });
    assert.equal(again.json().backend, answer.json().backend);
  });

  it('refuses to start or pass --check with several workers and no secret (exit 2)', async () => {
    const { dir, file } = writeTempConfig({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ url: 'ws://127.0.0.1:9001' }],
      plugins: ['sticky-sessions'],
      workers: 2,
    });
    cleanup.defer(async () => rmSync(dir, { recursive: true, force: true }));
    for (const args of [
      ['--config', file],
      ['--check', '--config', file],
    ]) {
      const result = await execWslb(args);
      assert.equal(result.code, 2, `wslb ${args.join(' ')}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, /\/plugins\/0\/options: option "secret" is required with several workers/);
    }
  });

  it('rejects invalid options with their JSON paths (exit 2)', async () => {
    const { dir, file } = writeTempConfig({
      backends: [{ url: 'ws://127.0.0.1:9001' }],
      plugins: [{ use: 'sticky-sessions', options: { cookie: 'a b', secret: 'short', maxAge: -1 } }],
    });
    cleanup.defer(async () => rmSync(dir, { recursive: true, force: true }));
    const result = await execWslb(['--check', '--config', file]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /\/plugins\/0\/options\/cookie: must match pattern/);
    assert.match(result.stderr, /\/plugins\/0\/options\/secret: must NOT have fewer than 16 characters/);
    assert.match(result.stderr, /\/plugins\/0\/options\/maxAge: must be >= 1/);
  });

  it('without the plugin, round-robin spreads the same client (the contrast)', async () => {
    const list = await backends();
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: list.map((b) => ({ id: b.id, url: b.url })),
      plugins: ['round-robin'],
      log: { access: false },
    });
    cleanup.defer(() => wslb.stop());
    const served = new Set<string>();
    for (let i = 0; i < 3; i++)
      served.add((await httpGet(`${wslb.httpUrl}/`, { cookie: 'wslb=x' })).json().backend);
    assert.equal(served.size, 3);
  });
});
