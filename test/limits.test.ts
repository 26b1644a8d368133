import assert from 'node:assert/strict';
import { request } from 'node:http';
import { afterEach, describe, it } from 'node:test';
import { type Plugin, STAGE_BALANCE } from '@wslb/core';
import roundRobin from '@wslb/round-robin';
import {
  createCleanup,
  type OpenedClient,
  assertNoLeakedHandles,
  closeAll,
  openClient,
  openClients,
  roundTrip,
  runWslb,
  startEchoBackends,
  startProxy,
  upgradeRequest,
  waitFor,
  webSocketKey,
} from '@wslb/testing';
import type { ClientOptions } from 'ws';
import { rawServer, requestHead } from './helpers/peers.js';

/** Opens a WebSocket; resolves with the client or the refusal status. */
async function attempt(url: string, options?: ClientOptions): Promise<OpenedClient | number> {
  try {
    return await openClient(url, options);
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status === undefined) throw err;
    return status;
  }
}

function statuses(results: Array<OpenedClient | number>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) {
    const key = typeof r === 'number' ? String(r) : (r.backend ?? 'open');
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

const upgradeHeaders = (): Record<string, string> => ({
  'sec-websocket-key': webSocketKey(),
  'sec-websocket-version': '13',
});

/** A balancer that decides after an await, like one asking a remote store. */
function slowBalancer(): Plugin {
  return {
    name: 'slow-balancer',
    balancer: true,
    apply(proxy) {
      proxy.hooks.select.tapPromise(
        { name: 'slow-balancer', stage: STAGE_BALANCE },
        async (_ctx, candidates) => {
          await new Promise((r) => setTimeout(r, 20));
          return candidates[0];
        },
      );
    },
  };
}

describe('connection limits', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('maxConnections per backend: a full backend is skipped, all full is 503 with Retry-After', async () => {
    const [a, b] = (await startEchoBackends(2)).map((backend) => cleanup.add(backend));
    const proxy = cleanup.add(
      await startProxy({
        backends: [
          { id: 'b1', url: a!.url, maxConnections: 2 },
          { id: 'b2', url: b!.url, maxConnections: 1 },
        ],
        plugins: [roundRobin()],
      }),
    );
    const { clients, perBackend } = await openClients(proxy.url, 3);
    assert.deepEqual(perBackend, { b1: 2, b2: 1 });
    const full = await upgradeRequest(proxy.url, upgradeHeaders());
    assert.equal(full.status, 503);
    assert.ok(full.headers['retry-after'], 'Retry-After on 503');
    assert.equal(a!.upgrades + b!.upgrades, 3, 'a full backend is never dialed');
    // A slot frees up on b1: the next socket goes there.
    const onB1 = clients.find((c) => c.backend === 'b1')!;
    await closeAll([onB1]);
    await waitFor(() => proxy.proxy.pool.get('b1')!.active === 1, { message: 'b1 slot freed' });
    const again = await openClient(proxy.url);
    assert.equal(again.backend, 'b1');
    await closeAll([...clients.filter((c) => c !== onB1), again]);
    await waitFor(() => proxy.proxy.connections.active === 0);
    assert.equal(proxy.proxy.pool.get('b1')!.active, 0);
    assert.equal(proxy.proxy.pool.get('b2')!.active, 0);
  });

  it('maxConnections holds for concurrent handshakes, with a balancer that awaits', async () => {
    const [a, b] = (await startEchoBackends(2)).map((backend) => cleanup.add(backend));
    const proxy = cleanup.add(
      await startProxy({
        backends: [
          { id: 'b1', url: a!.url, maxConnections: 3 },
          { id: 'b2', url: b!.url, maxConnections: 2 },
        ],
        plugins: [slowBalancer()],
      }),
    );
    const results = await Promise.all(Array.from({ length: 10 }, () => attempt(proxy.url)));
    assert.deepEqual(statuses(results), { b1: 3, b2: 2, '503': 5 });
    assert.equal(a!.clients.size, 3);
    assert.equal(b!.clients.size, 2);
    await closeAll(results.filter((r): r is OpenedClient => typeof r !== 'number'));
    await waitFor(() => proxy.proxy.connections.active === 0);
  });

  it('limits.connections: past it 503 with Retry-After; plain HTTP in flight counts too', async () => {
    const [a] = (await startEchoBackends(1)).map((backend) => cleanup.add(backend));
    // A backend that holds HTTP requests until told to answer.
    const slow = cleanup.add(await rawServer(() => {}));
    const proxy = cleanup.add(
      await startProxy({
        backends: [
          { id: 'b1', url: a!.url },
          { id: 'slow', url: slow.url },
        ],
        limits: { connections: 3 },
        plugins: [
          {
            name: 'route',
            balancer: true,
            apply(p) {
              p.hooks.select.tap({ name: 'route', stage: STAGE_BALANCE }, (ctx, candidates) =>
                candidates.find((c) => c.id === (ctx.request?.url === '/slow' ? 'slow' : 'b1')),
              );
            },
          },
        ],
      }),
    );
    const { clients } = await openClients(proxy.url, 2);
    // The third slot: an HTTP request in flight.
    const held = new Promise<number>((resolve, reject) => {
      const req = request({ port: proxy.port, host: '127.0.0.1', path: '/slow', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
    const backendSide = await slow.accepted(1);
    await requestHead(backendSide);
    assert.equal(proxy.proxy.connections.active, 3);
    const over = await upgradeRequest(proxy.url, upgradeHeaders());
    assert.equal(over.status, 503);
    assert.ok(over.headers['retry-after'], "over.headers['retry-after']");
    const overHttp = await fetch(`${proxy.httpUrl}/other`);
    assert.equal(overHttp.status, 503);
    await overHttp.text();
    // The HTTP request finishes: its slot is free again.
    backendSide.socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok');
    assert.equal(await held, 200);
    await waitFor(() => proxy.proxy.connections.active === 2, { message: 'the HTTP slot freed' });
    const third = await openClient(proxy.url);
    assert.equal((await roundTrip(third.ws, 'in')).data.toString(), 'in');
    await closeAll([...clients, third]);
    await waitFor(() => proxy.proxy.connections.active === 0);
  });

  it('limits.perClient: 429 past it for that address only; other addresses go on', async () => {
    const [a] = (await startEchoBackends(1)).map((backend) => cleanup.add(backend));
    const proxy = cleanup.add(
      await startProxy({ backends: [{ id: 'b1', url: a!.url }], limits: { perClient: 2 } }),
    );
    const mine = await openClients(proxy.url, 2, { localAddress: '127.0.0.1' });
    const third = await upgradeRequest(proxy.url, upgradeHeaders());
    assert.equal(third.status, 429);
    assert.equal(await attempt(proxy.url, { localAddress: '127.0.0.1' }), 429);
    const httpOver = await fetch(`${proxy.httpUrl}/x`);
    assert.equal(httpOver.status, 429);
    await httpOver.text();
    // Another address is not affected by the first one's use.
    const other = await openClients(proxy.url, 2, { localAddress: '127.0.0.2' });
    assert.equal(await attempt(proxy.url, { localAddress: '127.0.0.2' }), 429);
    assert.equal(a!.upgrades, 4, 'refused connections never reach a backend');
    // Many refusals leave no trace in the accounting.
    for (let i = 0; i < 50; i++) assert.equal(await attempt(proxy.url, { localAddress: '127.0.0.1' }), 429);
    assert.equal(proxy.proxy.connections.active, 4);
    await closeAll([mine.clients[0]!]);
    await waitFor(() => proxy.proxy.connections.active === 3);
    const back = await openClient(proxy.url, { localAddress: '127.0.0.1' });
    await closeAll([...mine.clients, ...other.clients, back]);
    await waitFor(() => proxy.proxy.connections.active === 0);
    // With everything closed, each address has its full allowance again.
    const fresh = await openClients(proxy.url, 2, { localAddress: '127.0.0.1' });
    await closeAll(fresh.clients);
  });

  it('limits.perClient counts the forwarded address behind a trusted proxy, never a spoofed one', async () => {
    const [a] = (await startEchoBackends(1)).map((backend) => cleanup.add(backend));
    const proxy = cleanup.add(
      await startProxy({
        backends: [{ id: 'b1', url: a!.url }],
        limits: { perClient: 1 },
        trustedProxies: ['127.0.0.2/32'],
      }),
    );
    // Behind the trusted front proxy (127.0.0.2) two end users each get their own allowance.
    const ana = await openClient(proxy.url, {
      localAddress: '127.0.0.2',
      headers: { 'x-forwarded-for': '203.0.113.7' },
    });
    const bob = await openClient(proxy.url, {
      localAddress: '127.0.0.2',
      headers: { 'x-forwarded-for': '203.0.113.8' },
    });
    assert.equal(
      await attempt(proxy.url, { localAddress: '127.0.0.2', headers: { 'x-forwarded-for': '203.0.113.7' } }),
      429,
    );
    // An untrusted peer cannot dodge the limit by inventing X-Forwarded-For values.
    const eve = await openClient(proxy.url, {
      localAddress: '127.0.0.3',
      headers: { 'x-forwarded-for': '198.51.100.1' },
    });
    assert.equal(
      await attempt(proxy.url, { localAddress: '127.0.0.3', headers: { 'x-forwarded-for': '198.51.100.2' } }),
      429,
    );
    await closeAll([ana, bob, eve]);
    await waitFor(() => proxy.proxy.connections.active === 0);
  });

  it('the binary enforces limits from its JSON config', async () => {
    const [a] = (await startEchoBackends(1)).map((backend) => cleanup.add(backend));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'b1', url: a!.url, maxConnections: 10 }],
      limits: { perClient: 2, connections: 3 },
      log: { level: 'info', access: false },
    });
    cleanup.defer(async () => {
      await wslb.stop();
    });
    const first = await openClients(wslb.url, 2, { localAddress: '127.0.0.1' });
    assert.equal(await attempt(wslb.url, { localAddress: '127.0.0.1' }), 429);
    const third = await openClient(wslb.url, { localAddress: '127.0.0.2' });
    assert.equal(await attempt(wslb.url, { localAddress: '127.0.0.3' }), 503);
    await closeAll([...first.clients, third]);
    // Once the proxy has seen the closes, the slots are free again.
    const after = await waitFor(async () => {
      const r = await attempt(wslb.url, { localAddress: '127.0.0.3' });
      return typeof r === 'number' ? undefined : r;
    });
    await closeAll([after]);
    assert.equal(await wslb.stop(), 0);
  });
});
