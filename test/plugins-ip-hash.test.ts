import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import ipHash from '@wslb/ip-hash';
import {
  createCleanup,
  type EchoBackend,
  assertNoLeakedHandles,
  closeAll,
  execWslb,
  openClient,
  runWslb,
  startEchoBackends,
  startProxy,
  writeTempConfig,
} from '@wslb/testing';
import { httpGet } from './helpers/http.js';

/** 127.0.0.2 ... : distinct client addresses on loopback. */
const sources = (count: number): string[] => Array.from({ length: count }, (_, i) => `127.0.0.${i + 2}`);

describe('ip-hash through the wslb binary', { timeout: 60_000 }, () => {
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

  async function wslbWith(list: EchoBackend[], plugin: object | string, extra: object = {}) {
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: list.map((b) => ({ id: b.id, url: b.url })),
      plugins: [plugin],
      log: { access: false },
      ...extra,
    });
    cleanup.defer(() => wslb.stop());
    return wslb;
  }

  /** Which backend each client address lands on (a WebSocket each, closed at once). */
  async function owners(url: string, addresses: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    for (const localAddress of addresses) {
      const client = await openClient(url, { localAddress });
      out.push(client.backend!);
      await closeAll([client]);
    }
    return out;
  }

  it('keeps each client address on one backend, spreads addresses, and maps them the same after a restart', async () => {
    const list = await backends();
    const addresses = sources(30);
    const first = await wslbWith(list, 'ip-hash');
    const before = await owners(first.url, addresses);
    assert.deepEqual(await owners(first.url, addresses), before, 'same address, same backend');
    const spread = new Set(before);
    assert.equal(spread.size, 3, `30 addresses over ${[...spread].join(',')}`);
    // HTTP requests from an address go where its WebSockets go.
    for (const [i, localAddress] of addresses.slice(0, 5).entries()) {
      assert.equal((await httpGet(`${first.httpUrl}/`, {}, { localAddress })).json().backend, before[i]);
    }
    assert.equal(await first.stop(), 0);
    const second = await wslbWith(list, 'ip-hash');
    assert.deepEqual(await owners(second.url, addresses), before, 'a new process maps keys the same');
  });

  it('with ipv4Prefix: 24 sends a whole /24 to one backend (nginx ip_hash)', async () => {
    const list = await backends();
    const wslb = await wslbWith(list, { use: 'ip-hash', options: { ipv4Prefix: 24 } });
    assert.equal(new Set(await owners(wslb.url, sources(12))).size, 1);
  });

  it('hashes a header, a query parameter or a cookie, falling back to the client address', async () => {
    const list = await backends();
    const users = Array.from({ length: 24 }, (_, i) => `user-${i}`);
    const requests = {
      'header:X-User': (base: string, u: string) => httpGet(`${base}/`, { 'x-user': u }),
      'query:user': (base: string, u: string) => httpGet(`${base}/chat?room=1&user=${u}`),
      'cookie:uid': (base: string, u: string) => httpGet(`${base}/`, { cookie: `a=1; uid=${u}` }),
    };
    for (const [key, request] of Object.entries(requests)) {
      const wslb = await wslbWith(list, { use: 'ip-hash', options: { key } });
      const ask = async (u: string) => (await request(wslb.httpUrl, u)).json().backend;
      const byUser: string[] = [];
      for (const u of users) byUser.push(await ask(u));
      assert.equal(new Set(byUser).size, 3, `${key}: 24 users spread over the 3 backends`);
      for (const [i, u] of users.entries()) assert.equal(await ask(u), byUser[i], `${key}: ${u} stays`);
      // Without the key, the client address decides: the same backend every time.
      const fallback: string[] = [];
      for (let i = 0; i < 3; i++) fallback.push((await httpGet(`${wslb.httpUrl}/`)).json().backend);
      assert.equal(new Set(fallback).size, 1, `${key}: ${fallback.join(',')}`);
      await wslb.stop();
    }
  });

  it('hashes the forwarded address when the peer is a trusted proxy', async () => {
    const list = await backends();
    const wslb = await wslbWith(list, 'ip-hash', { trustedProxies: ['127.0.0.1/32'] });
    const forwarded = sources(24).map((a) => a.replace(/^127\.0\.0\./, '203.0.113.'));
    const byClient: string[] = [];
    for (const address of forwarded) {
      byClient.push((await httpGet(`${wslb.httpUrl}/`, { 'x-forwarded-for': address })).json().backend);
    }
    assert.equal(new Set(byClient).size, 3, 'forwarded clients spread although all come from 127.0.0.1');
    for (const [i, address] of forwarded.entries()) {
      const client = await openClient(wslb.url, { headers: { 'x-forwarded-for': address } });
      assert.equal(client.backend, byClient[i]);
      await closeAll([client]);
    }
  });

  it('moves only the keys of a dead backend, and they come back when it returns', async () => {
    const list = await backends();
    const wslb = await wslbWith(list, 'ip-hash');
    const addresses = sources(30);
    const before = await owners(wslb.url, addresses);
    const victim = list.find((b) => b.id === before[0])!;
    await victim.kill();
    const during = await owners(wslb.url, addresses);
    before.forEach((owner, i) => {
      if (owner === victim.id) assert.notEqual(during[i], victim.id);
      else assert.equal(during[i], owner, `${addresses[i]} stayed on ${owner}`);
    });
    await victim.restart();
    assert.deepEqual(await owners(wslb.url, addresses), before);
  });

  it('rejects an unknown key source with its JSON path (exit 2)', async () => {
    const { dir, file } = writeTempConfig({
      backends: [{ url: 'ws://127.0.0.1:9001' }],
      plugins: [{ use: 'ip-hash', options: { key: 'body:user', ipv4Prefix: 33 } }],
    });
    cleanup.defer(async () => rmSync(dir, { recursive: true, force: true }));
    const result = await execWslb(['--check', '--config', file]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /\/plugins\/0\/options\/key: must match pattern/);
    assert.match(result.stderr, /\/plugins\/0\/options\/ipv4Prefix: must be <= 32/);
  });
});

describe('ip-hash with backend states (in process)', { timeout: 30_000 }, () => {
  it('moves the keys of a down or draining backend and brings them back when it is up', async () => {
    const list = await startEchoBackends(3);
    const proxy = await startProxy({
      backends: list.map((b) => ({ id: b.id, url: b.url })),
      plugins: [ipHash()],
    });
    try {
      const addresses = sources(30);
      const owner = async () => {
        const out: string[] = [];
        for (const localAddress of addresses) {
          out.push((await httpGet(`${proxy.httpUrl}/`, {}, { localAddress })).json().backend);
        }
        return out;
      };
      const before = await owner();
      const pool = proxy.proxy.pool;
      for (const [leave, back] of [
        [
          (b: string) => pool.setState(pool.get(b)!, 'down', 'test'),
          (b: string) => pool.setState(pool.get(b)!, 'up', 'test'),
        ],
        [(b: string) => pool.drain(pool.get(b)!), (b: string) => pool.enable(pool.get(b)!)],
      ] as const) {
        assert.ok(before.includes('b2'), 'b2 owns some of the 30 addresses');
        leave('b2');
        const during = await owner();
        before.forEach((o, i) => {
          if (o === 'b2') assert.notEqual(during[i], 'b2');
          else assert.equal(during[i], o, `${addresses[i]} stayed on ${o}`);
        });
        back('b2');
        assert.deepEqual(await owner(), before);
      }
    } finally {
      await proxy.close();
      await Promise.all(list.map((b) => b.close()));
    }
    await assertNoLeakedHandles();
  });
});
