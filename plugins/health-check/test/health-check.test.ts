import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import {
  type EchoBackend,
  assertNoLeakedHandles,
  closeAll,
  openClients,
  roundTrip,
  startEchoBackends,
  startProxy,
  waitFor,
} from '@wslb/testing';
import roundRobin from '@wslb/round-robin';
import healthCheck, {
  HealthCheckPlugin,
  probeHttp,
  probeTcp,
  probeWs,
  type ProbeTarget,
} from '../src/index.js';
import { parseStatusRanges, resolveSettings } from '../src/options.js';

type Cleanup = () => Promise<unknown> | unknown;
let cleanup: Cleanup[] = [];

afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
  await assertNoLeakedHandles();
});

function target(port: number): ProbeTarget {
  return { id: `127.0.0.1:${port}`, hostname: '127.0.0.1', port, secure: false, basePath: '' };
}

async function listen(server: Server | ReturnType<typeof createTcpServer>): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as AddressInfo).port;
}

/** Accepts TCP and never answers anything. */
async function silentServer(): Promise<number> {
  return listen(createTcpServer(() => {}));
}

async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function echo(n: number): Promise<EchoBackend[]> {
  const backends = await startEchoBackends(n);
  cleanup.push(() => Promise.all(backends.map((b) => b.close())));
  return backends;
}

describe('probes', { timeout: 20_000 }, () => {
  it('tcp: a listening port passes, a closed one fails', async () => {
    const [b] = await echo(1);
    const ok = await probeTcp(target(b!.port), 500);
    assert.equal(ok.ok, true);
    const dead = await probeTcp(target(await freePort()), 500);
    assert.equal(dead.ok, false);
    assert.match(dead.reason, /ECONNREFUSED/);
  });

  it('http: status within expect passes, outside fails; the path and Host are sent', async () => {
    let seen: { url?: string; host?: string } = {};
    const port = await listen(
      createServer((req, res) => {
        seen = { url: req.url, host: req.headers.host };
        res.writeHead(req.url === '/healthz' ? 204 : 503).end();
      }),
    );
    const settings = { path: '/healthz', expect: parseStatusRanges('200-399'), headers: {}, timeout: 500 };
    const ok = await probeHttp({ ...target(port), hostHeader: 'app.example' }, settings);
    assert.deepEqual([ok.ok, ok.status], [true, 204]);
    assert.deepEqual(seen, { url: '/healthz', host: 'app.example' });
    const bad = await probeHttp(target(port), { ...settings, path: '/other' });
    assert.deepEqual([bad.ok, bad.status], [false, 503]);
    const custom = await probeHttp(target(port), {
      ...settings,
      path: '/other',
      expect: parseStatusRanges([503]),
    });
    assert.equal(custom.ok, true);
    // A Host among the configured headers replaces the default one, whatever its case.
    const withHost = resolveSettings({ type: 'http', path: '/healthz', headers: { Host: 'check.example' } });
    assert.equal((await probeHttp(target(port), { ...withHost.active!, timeout: 500 })).ok, true);
    assert.equal(seen.host, 'check.example');
  });

  it('ws: 101 then close passes (with ping/pong too); a refusal and a silent server fail', async () => {
    const [b] = await echo(1);
    const settings = { path: '/ws-check', headers: {}, timeout: 500, ping: false };
    const ok = await probeWs(target(b!.port), settings);
    assert.equal(ok.ok, true, ok.reason);
    assert.equal(b!.seen.at(-1)?.url, '/ws-check');
    await waitFor(() => b!.clients.size === 0, { message: 'check socket closed on the backend' });
    const pinged = await probeWs(target(b!.port), { ...settings, ping: true });
    assert.equal(pinged.ok, true, pinged.reason);

    const refusing = await listen(createServer((_req, res) => res.writeHead(503).end('busy')));
    const refused = await probeWs(target(refusing), settings);
    assert.deepEqual([refused.ok, refused.status], [false, 503]);
    assert.match(refused.reason, /503 instead of 101/);

    const silent = await silentServer();
    const timedOut = await probeWs(target(silent), { ...settings, timeout: 200 });
    assert.equal(timedOut.ok, false);
    assert.match(timedOut.reason, /timed out|timeout/i);
    // The tcp check cannot see that: the port accepts.
    assert.equal((await probeTcp(target(silent), 200)).ok, true);
  });

  it('ws: checks the accept key, skips messages, and wants a close frame back', async () => {
    // A raw server speaking just enough WebSocket: `mode` picks how it misbehaves.
    const rawWs = (mode: 'wrong-accept' | 'chatty' | 'no-close-frame') =>
      listen(
        createTcpServer((socket) => {
          let request = '';
          socket.on('data', (chunk: Buffer) => {
            if (request.includes('\r\n\r\n')) {
              // A frame from the check: the close frame (opcode 8) gets one back, or none.
              if ((chunk[0]! & 0x0f) === 0x8) {
                if (mode === 'no-close-frame') socket.destroy();
                else socket.end(Buffer.from([0x88, 0x02, 0x03, 0xe8]));
              }
              return;
            }
            request += chunk.toString('latin1');
            if (!request.includes('\r\n\r\n')) return;
            const key = /sec-websocket-key: (\S+)/i.exec(request)![1]!;
            const accept =
              mode === 'wrong-accept'
                ? 'AAAAAAAAAAAAAAAAAAAAAAAAAAA='
                : createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
            const head = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
            // A 70000-byte greeting (64-bit length) in the same write as the 101, then a small one.
            const big = Buffer.alloc(70_000, 'g');
            const bigHeader = Buffer.alloc(10);
            bigHeader[0] = 0x81;
            bigHeader[1] = 127;
            bigHeader.writeBigUInt64BE(BigInt(big.length), 2);
            socket.write(
              Buffer.concat([Buffer.from(head), bigHeader, big, Buffer.from([0x81, 0x02, 0x68, 0x69])]),
            );
          });
        }),
      );
    const settings = { path: '/', headers: {}, timeout: 1000, ping: false };
    const wrong = await probeWs(target(await rawWs('wrong-accept')), settings);
    assert.deepEqual([wrong.ok, wrong.reason], [false, 'upgrade failed: invalid Sec-WebSocket-Accept']);
    const chatty = await probeWs(target(await rawWs('chatty')), settings);
    assert.equal(chatty.ok, true, chatty.reason);
    const rude = await probeWs(target(await rawWs('no-close-frame')), settings);
    assert.deepEqual([rude.ok, rude.reason], [false, 'closed without a close frame']);
  });

  it('an aborted check settles at once and closes its socket', async () => {
    const silent = await silentServer();
    const controller = new AbortController();
    const pending = probeWs(
      target(silent),
      { path: '/', headers: {}, timeout: 5000, ping: false },
      controller.signal,
    );
    setTimeout(() => controller.abort(), 50);
    const result = await pending;
    assert.deepEqual([result.ok, result.reason], [false, 'cancelled']);
  });
});

describe('health-check in a proxy', { timeout: 30_000 }, () => {
  it('never runs two checks of a backend at once, even when a check outlasts the interval', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let answered = 0;
    const port = await listen(
      createServer((_req, res) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        setTimeout(() => {
          inFlight--;
          answered++;
          res.writeHead(200).end();
        }, 120);
      }),
    );
    const plugin = healthCheck({ type: 'http', interval: 20, timeout: 1000, fall: 1 });
    const proxy = await startProxy({
      backends: [{ id: 'slow', url: `http://127.0.0.1:${port}` }],
      plugins: [roundRobin(), plugin],
    });
    cleanup.unshift(() => proxy.close());
    await waitFor(() => answered >= 3, { message: 'three slow checks' });
    assert.equal(maxInFlight, 1);
    assert.equal(proxy.proxy.pool.get('slow')!.state, 'up', 'a slow check within timeout passes');
  });

  it('ws checks take a killed backend out and bring it back after rise checks', async () => {
    const backends = await echo(3);
    const plugin = healthCheck({ type: 'ws', interval: 100, timeout: 100, rise: 2, fall: 2 });
    const proxy = await startProxy({
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      plugins: [roundRobin(), plugin],
    });
    cleanup.unshift(() => proxy.close());
    const states: string[] = [];
    proxy.proxy.hooks.backendState.tap('test', (b, previous, reason) =>
      states.push(`${b.id}:${previous}->${b.state}:${reason}`),
    );
    const before = await openClients(proxy.url, 6);
    assert.deepEqual(before.perBackend, { b1: 2, b2: 2, b3: 2 });

    await backends[1]!.kill();
    const b2 = proxy.proxy.pool.get('b2')!;
    await waitFor(() => b2.state === 'down', { timeoutMs: 2000, message: 'b2 down' });
    assert.match(states[0]!, /^b2:up->down:health-check ws: 2 consecutive failed checks/);
    const during = await openClients(proxy.url, 6);
    assert.deepEqual(during.perBackend, { b1: 3, b3: 3 });
    for (const c of [...before.clients, ...during.clients].filter((c) => c.backend !== 'b2')) {
      assert.equal((await roundTrip(c.ws, 'still there')).data.toString(), 'still there');
    }

    await backends[1]!.restart();
    await waitFor(() => b2.state === 'up', { timeoutMs: 2000, message: 'b2 up again' });
    assert.match(states[1]!, /^b2:down->up:health-check ws: 2 consecutive successful checks/);
    const after = await openClients(proxy.url, 6);
    assert.ok((after.perBackend.b2 ?? 0) >= 1, `b2 takes traffic again: ${JSON.stringify(after.perBackend)}`);
    await closeAll([...before.clients, ...during.clients, ...after.clients]);
  });

  it('reports each result through getHooks(proxy).check and stops checking on close', async () => {
    const [b] = await echo(1);
    const plugin = healthCheck({ type: 'ws', path: '/probe', interval: 50, timeout: 100 });
    const proxy = await startProxy({
      backends: [{ id: b!.id, url: b!.url }],
      plugins: [roundRobin(), plugin],
    });
    const results: string[] = [];
    HealthCheckPlugin.getHooks(proxy.proxy).check.tap('test', (backend, r) =>
      results.push(`${backend.id}:${r.ok}:${r.type}`),
    );
    await waitFor(() => results.length >= 3, { message: 'three checks' });
    assert.deepEqual(new Set(results), new Set(['b1:true:ws']));
    const backend = proxy.proxy.pool.get('b1')!;
    assert.equal(backend.lastCheckOk, true);
    assert.ok(Date.now() - backend.lastCheck < 1000, 'Date.now() - backend.lastCheck < 1000');
    await proxy.close();
    const checks = b!.seen.filter((s) => s.url === '/probe').length;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(b!.seen.filter((s) => s.url === '/probe').length, checks, 'no check after close');
  });

  it('a backend that accepts TCP but never answers the upgrade: ws checks mark it down, tcp checks miss it', async () => {
    const [good] = await echo(1);
    const silent = await silentServer();
    const backends = [
      { id: 'good', url: good!.url },
      { id: 'silent', url: `ws://127.0.0.1:${silent}` },
    ];
    const options = { interval: 100, timeout: 150, rise: 1, fall: 2 };
    const wsProxy = await startProxy({
      backends,
      plugins: [roundRobin(), healthCheck({ type: 'ws', ...options })],
    });
    cleanup.unshift(() => wsProxy.close());
    const tcpProxy = await startProxy({
      backends,
      plugins: [roundRobin(), healthCheck({ type: 'tcp', ...options })],
    });
    cleanup.unshift(() => tcpProxy.close());
    await waitFor(() => wsProxy.proxy.pool.get('silent')!.state === 'down', {
      timeoutMs: 3000,
      message: 'ws checks mark the silent backend down',
    });
    assert.equal(tcpProxy.proxy.pool.get('silent')!.state, 'up', 'tcp checks see an open port');
    assert.equal(tcpProxy.proxy.pool.get('silent')!.lastCheckOk, true);
    // Through the ws-checked proxy, every new socket reaches the good backend.
    const { clients, perBackend } = await openClients(wsProxy.url, 4);
    assert.deepEqual(perBackend, { b1: 4 }, 'the echo backend behind "good" names itself b1');
    await closeAll(clients);
  });

  it('passive only: a failed dial takes the backend out for failTimeout, then it comes back', async () => {
    const backends = await echo(2);
    const plugin = healthCheck({ passive: { maxFails: 1, failTimeout: 400 } });
    const proxy = await startProxy({
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      plugins: [roundRobin(), plugin],
    });
    cleanup.unshift(() => proxy.close());
    await backends[0]!.kill();
    // The first dial to b1 fails and is retried on b2: the client never sees the failure.
    const { clients, perBackend } = await openClients(proxy.url, 4);
    assert.deepEqual(perBackend, { b2: 4 });
    const b1 = proxy.proxy.pool.get('b1')!;
    assert.equal(b1.state, 'down');
    assert.equal(b1.failures, 1, 'one dial reached it');
    await backends[0]!.restart();
    await waitFor(() => b1.state === 'up', { timeoutMs: 2000, message: 'b1 back after failTimeout' });
    const again = await openClients(proxy.url, 4);
    assert.ok((again.perBackend.b1 ?? 0) >= 1, `b1 takes traffic again: ${JSON.stringify(again.perBackend)}`);
    await closeAll([...clients, ...again.clients]);
  });

  it('reload: new backends are checked, removed ones are not', async () => {
    const backends = await echo(2);
    const plugin = healthCheck({ type: 'ws', path: '/r', interval: 50, timeout: 100 });
    const proxy = await startProxy({
      backends: [{ id: 'b1', url: backends[0]!.url }],
      plugins: [roundRobin(), plugin],
    });
    cleanup.unshift(() => proxy.close());
    await proxy.proxy.reload({ ...proxy.proxy.config, backends: [{ id: 'b2', url: backends[1]!.url }] });
    await waitFor(() => backends[1]!.seen.some((s) => s.url === '/r'), { message: 'b2 checked' });
    const b1Checks = backends[0]!.seen.filter((s) => s.url === '/r').length;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(backends[0]!.seen.filter((s) => s.url === '/r').length, b1Checks, 'b1 no longer checked');
  });
});

describe('slow start in a proxy', { timeout: 20_000 }, () => {
  it('a backend back from down takes a small share first, then its full share', async () => {
    const backends = await echo(2);
    // Generous check timeouts: a slow machine must not fail b1's checks and leave nothing up.
    const plugin = healthCheck({
      type: 'ws',
      interval: 50,
      timeout: 1000,
      rise: 1,
      fall: 2,
      slowStart: 1000,
    });
    const proxy = await startProxy({
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      plugins: [roundRobin(), plugin],
    });
    cleanup.unshift(() => proxy.close());
    const b2 = proxy.proxy.pool.get('b2')!;
    await backends[1]!.kill();
    await waitFor(() => b2.state === 'down', { message: 'b2 down' });
    await backends[1]!.restart();
    await waitFor(() => b2.state === 'up', { message: 'b2 up' });
    const ramping = await openClients(proxy.url, 20);
    // Without slow start round-robin would give it 10 of 20.
    assert.ok((ramping.perBackend.b2 ?? 0) <= 6, `b2 ramps: ${JSON.stringify(ramping.perBackend)}`);
    await waitFor(() => Date.now() - b2.upSince > 1000, { message: 'ramp over' });
    const full = await openClients(proxy.url, 20);
    assert.ok((full.perBackend.b2 ?? 0) >= 9, `b2 at full weight: ${JSON.stringify(full.perBackend)}`);
    await closeAll([...ramping.clients, ...full.clients]);
  });
});
