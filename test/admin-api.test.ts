import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { type AdminServer, adminConfigIssue, isLoopbackHost, startAdminServer } from '@wslb/cli';
import roundRobin from '@wslb/round-robin';
import {
  type TestProxy,
  assertNoLeakedHandles,
  closeAll,
  execWslb,
  openClient,
  roundTrip,
  startEchoBackends,
  startProxy,
  waitFor,
  writeTempConfig,
} from '@wslb/testing';
import { adminRequest, backendAction } from './helpers/admin.js';

type Cleanup = () => Promise<unknown> | unknown;
let cleanup: Cleanup[] = [];

afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
  await assertNoLeakedHandles();
});

async function setup(token?: string): Promise<{ proxy: TestProxy; admin: AdminServer }> {
  const backends = await startEchoBackends(2);
  cleanup.push(() => Promise.all(backends.map((b) => b.close())));
  const proxy = await startProxy({
    backends: backends.map((b) => ({ id: b.id, url: b.url })),
    plugins: [roundRobin()],
  });
  cleanup.push(() => proxy.close());
  const admin = await startAdminServer(proxy.proxy, { port: 0, ...(token ? { token } : {}) });
  cleanup.push(() => admin.close());
  return { proxy, admin };
}

describe('admin API', { timeout: 30_000 }, () => {
  it('with a token: 401 without it or with a wrong one, 200 with it; /healthz stays open', async () => {
    const { admin } = await setup('s3cret');
    for (const path of ['/status', '/metrics']) {
      const none = await adminRequest(admin.port, path);
      assert.equal(none.status, 401, path);
      assert.match(String(none.headers['www-authenticate']), /^Bearer/);
      assert.equal(
        (await adminRequest(admin.port, path, { headers: { authorization: 'Bearer nope' } })).status,
        401,
      );
      assert.equal(
        (await adminRequest(admin.port, path, { headers: { authorization: 'Bearer s3cret' } })).status,
        200,
      );
    }
    assert.equal((await backendAction(admin.port, 'b1', 'drain')).status, 401);
    const drained = await backendAction(admin.port, 'b1', 'drain', { authorization: 'Bearer s3cret' });
    assert.equal(drained.status, 200);
    assert.equal(JSON.parse(drained.body).state, 'draining');
    // With a token, a POST needs no JSON content type: the bearer header already rules out CSRF.
    const enabled = await adminRequest(admin.port, '/backends/b1/enable', {
      method: 'POST',
      headers: { authorization: 'Bearer s3cret' },
    });
    assert.equal(enabled.status, 200);
    assert.equal((await adminRequest(admin.port, '/healthz')).status, 200);
    // The page answers 401 and asks for the token itself.
    const page = await adminRequest(admin.port, '/');
    assert.equal(page.status, 401);
    assert.match(page.body, /needs its bearer token/);
  });

  it('without a token: loopback Host only, JSON POSTs only, no cross-origin requests', async () => {
    const { admin } = await setup();
    assert.equal((await adminRequest(admin.port, '/status')).status, 200);
    // DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own Host.
    const rebound = await adminRequest(admin.port, '/status', {
      headers: { host: `evil.example:${admin.port}` },
    });
    assert.equal(rebound.status, 403);
    assert.equal(
      (await adminRequest(admin.port, '/status', { headers: { host: `localhost:${admin.port}` } })).status,
      200,
    );
    // CSRF: a form post has a simple content type, and a page's fetch names its origin.
    const form = await adminRequest(admin.port, '/backends/b1/drain', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'x=1',
    });
    assert.equal(form.status, 415);
    const crossOrigin = await backendAction(admin.port, 'b1', 'drain', { origin: 'http://evil.example' });
    assert.equal(crossOrigin.status, 403);
    const sameOrigin = await backendAction(admin.port, 'b1', 'drain', {
      origin: `http://127.0.0.1:${admin.port}`,
    });
    assert.equal(sameOrigin.status, 200);
  });

  it('answers 404 for an unknown backend or path and 405 for a wrong method', async () => {
    const { admin } = await setup();
    const unknown = await backendAction(admin.port, 'zz', 'drain');
    assert.equal(unknown.status, 404);
    assert.deepEqual(JSON.parse(unknown.body), { error: 'no backend "zz"' });
    assert.equal((await backendAction(admin.port, 'zz', 'enable')).status, 404);
    assert.equal((await adminRequest(admin.port, '/nope')).status, 404);
    const get = await adminRequest(admin.port, '/backends/b1/drain');
    assert.deepEqual([get.status, get.headers.allow], [405, 'POST']);
    const post = await adminRequest(admin.port, '/status', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(post.status, 405);
  });

  it('GET /status has the fields of SPEC section 6', async () => {
    const { proxy, admin } = await setup();
    const client = await openClient(proxy.url);
    cleanup.push(() => closeAll([client]));
    const status = JSON.parse((await adminRequest(admin.port, '/status')).body);
    assert.deepEqual(Object.keys(status.backends[0]).slice(0, 8), [
      'id',
      'url',
      'state',
      'weight',
      'active',
      'total',
      'failures',
      'lastCheck',
    ]);
    assert.deepEqual(status.connections, { active: 1, total: 1 });
    const served = status.backends.find((b: { id: string }) => b.id === client.backend);
    assert.deepEqual([served.state, served.active, served.total, served.lastCheck], ['up', 1, 1, null]);
    assert.equal(typeof status.uptime, 'number');
  });

  it('GET /healthz answers 503 while the proxy drains', async () => {
    const { proxy, admin } = await setup();
    const client = await openClient(proxy.url);
    const closing = proxy.proxy.close({ drain: 3000 });
    await waitFor(async () => (await adminRequest(admin.port, '/healthz')).status === 503, {
      message: '/healthz 503 while draining',
    });
    // The tunnel that keeps the proxy draining still works.
    assert.equal((await roundTrip(client.ws, 'still here')).data.toString(), 'still here');
    await closeAll([client]);
    await closing;
  });

  it('refuses a non-loopback listener without a token, in code and in the binary', async () => {
    assert.equal(isLoopbackHost('127.0.0.2'), true);
    assert.equal(isLoopbackHost('[::1]'), true);
    assert.equal(isLoopbackHost('0.0.0.0'), false);
    assert.equal(adminConfigIssue({ host: '0.0.0.0', port: 0, token: 't' }), undefined);
    const { proxy } = await setup();
    await assert.rejects(startAdminServer(proxy.proxy, { host: '0.0.0.0', port: 0 }), /\/admin/);

    const { dir, file } = writeTempConfig({
      backends: [{ url: 'ws://127.0.0.1:9001' }],
      admin: { host: '0.0.0.0', port: 0 },
    });
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const checked = await execWslb(['--check', '--config', file]);
    assert.equal(checked.code, 2);
    assert.match(checked.stderr, /\/admin: .*non-loopback.*token/);
    const started = await execWslb(['--config', file]);
    assert.equal(started.code, 2);
    assert.match(started.stderr, /\/admin/);
  });
});
