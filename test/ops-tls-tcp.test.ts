import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { request as httpsRequest } from 'node:https';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { encodeProxyHeader } from '@wslb/core';
import {
  createCleanup,
  assertNoLeakedHandles,
  execWslb,
  writeTempConfig,
  closeAll,
  closed,
  openClient,
  roundTrip,
  runWslb,
  startEchoBackends,
  startProxy,
  waitFor,
} from '@wslb/testing';
import { rawBackend } from './helpers/servers.js';
import { makeCertificate, startWssBackend, writeCertificate } from './helpers/tls.js';

function httpsGet(port: number, path: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, ca, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function peerFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const fp = socket.getPeerX509Certificate()!.fingerprint256;
      socket.destroy();
      resolve(fp);
    });
    socket.on('error', reject);
  });
}

describe('TLS, mode tcp, PROXY protocol and idle timeouts', { timeout: 120_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('terminates TLS: wss and https clients reach plain backends with X-Forwarded-Proto https', async () => {
    const cert = await makeCertificate();
    const files = writeCertificate(cert);
    cleanup.defer(files.remove);
    const backends = await startEchoBackends(1);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0, tls: { cert: files.certFile, key: files.keyFile } },
      backends: [{ id: 'b1', url: backends[0]!.url }],
    });
    cleanup.defer(() => wslb.stop());
    const client = await openClient(`wss://127.0.0.1:${wslb.port}/secure`, { ca: cert.cert });
    assert.equal((await roundTrip(client.ws, 'over tls')).data.toString(), 'over tls');
    const seen = backends[0]!.seen.find((s) => s.url === '/secure')!;
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.match(String(seen.headers.forwarded), /proto=https/);
    await closeAll([client]);
    const answer = await httpsGet(wslb.port, '/page', cert.cert);
    assert.equal(answer.status, 200);
    assert.equal(
      (JSON.parse(answer.body) as { headers: Record<string, string> }).headers['x-forwarded-proto'],
      'https',
    );
  });

  it('--check reads the certificate files like nginx -t: missing, mismatched or not PEM, each at its JSON path', async () => {
    const [first, second] = await Promise.all([makeCertificate(), makeCertificate()]);
    const files = writeCertificate(first);
    cleanup.defer(files.remove);
    const other = writeCertificate(second);
    cleanup.defer(other.remove);
    writeFileSync(join(files.dir, 'not-a-ca.pem'), 'hello\n');
    const check = async (config: object) => {
      const { dir, file } = writeTempConfig(config);
      cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
      return execWslb(['--check', '--config', file]);
    };
    const missing = await check({
      listen: [
        { port: 8443, tls: { cert: join(files.dir, 'nope.pem'), key: files.keyFile } },
        { port: 8444, tls: { cert: files.certFile, key: other.keyFile } },
      ],
      backends: [{ url: 'wss://127.0.0.1:9001', tls: { ca: join(files.dir, 'missing-ca.pem') } }],
    });
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /\/listen\/0\/tls\/cert: cannot read .*nope\.pem: ENOENT/);
    assert.match(missing.stderr, /\/listen\/1\/tls: certificate and key cannot be used/);
    assert.match(missing.stderr, /\/backends\/0\/tls\/ca: cannot read .*missing-ca\.pem: ENOENT/);

    const notPem = await check({
      listen: { port: 8443, tls: { cert: files.certFile, key: files.keyFile } },
      backends: [{ url: 'wss://127.0.0.1:9001', tls: { ca: join(files.dir, 'not-a-ca.pem') } }],
    });
    assert.equal(notPem.code, 2, notPem.stderr);
    assert.doesNotMatch(notPem.stderr, /\/listen/);
    assert.match(notPem.stderr, /\/backends\/0\/tls\/ca: not a CA certificate/);

    const fine = await check({
      listen: { port: 8443, tls: { cert: files.certFile, key: files.keyFile } },
      backends: [{ url: 'wss://127.0.0.1:9001', tls: { ca: files.certFile } }],
    });
    assert.equal(fine.code, 0, fine.stderr);
  });

  it('re-reads certificates on reload without dropping TLS sockets', async () => {
    const first = await makeCertificate();
    const second = await makeCertificate();
    const files = writeCertificate(first);
    cleanup.defer(files.remove);
    const backends = await startEchoBackends(1);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const config = {
      listen: { host: '127.0.0.1', port: 0, tls: { cert: files.certFile, key: files.keyFile } },
      backends: [{ id: 'b1', url: backends[0]!.url }],
    };
    const wslb = await runWslb(config);
    cleanup.defer(() => wslb.stop());
    assert.equal(await peerFingerprint(wslb.port, first.cert), first.fingerprint);
    const live = await openClient(`wss://127.0.0.1:${wslb.port}`, { ca: first.cert });
    writeCertificate(second, files.dir);
    wslb.writeConfig({ ...config, listen: { ...config.listen, port: wslb.port } });
    wslb.child.kill('SIGHUP');
    await wslb.waitForLog((l) => l.msg === 'reloaded');
    assert.equal(await peerFingerprint(wslb.port, second.cert), second.fingerprint);
    assert.equal((await roundTrip(live.ws, 'same socket')).data.toString(), 'same socket');
    await closeAll([live]);
  });

  it('mode tcp passes a TLS backend through untouched (wss passthrough)', async () => {
    const cert = await makeCertificate();
    const backend = await startWssBackend(cert, (ws) =>
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })),
    );
    cleanup.defer(() => backend.close());
    const backendPort = backend.port;
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      mode: 'tcp',
      backends: [{ id: 'tls-backend', url: `tcp://127.0.0.1:${backendPort}` }],
    });
    cleanup.defer(() => wslb.stop());
    // The certificate the client sees is the backend's own: wslb did not terminate TLS.
    assert.equal(await peerFingerprint(wslb.port, cert.cert), cert.fingerprint);
    const client = await openClient(`wss://127.0.0.1:${wslb.port}/through`, { ca: cert.cert });
    assert.equal((await roundTrip(client.ws, 'passthrough')).data.toString(), 'passthrough');
    await closeAll([client]);
    const access = await wslb.waitForLog(
      (l) => l.msg === 'access' && l.kind === 'tcp' && l.backend === 'tls-backend',
    );
    assert.equal(access.status, 200, 'a tcp session logs 200, as nginx stream does');
  });

  it('mode tcp keeps the answer flowing after the client half-closes (plain and behind a PROXY front)', async () => {
    // Answers only once the client's FIN arrived: what a request/response protocol over a
    // half-closed connection looks like (the backend reads to the end, then replies).
    const backend = await rawBackend((socket: Socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('end', () => {
        const text = Buffer.concat(chunks).toString('latin1');
        // Behind a PROXY front the backend gets no header of its own: only the payload.
        socket.end(`reply:${text}`);
      });
    });
    cleanup.defer(() => backend.close());
    for (const proxyProtocol of [false, true]) {
      const wslb = await runWslb({
        listen: { host: '127.0.0.1', port: 0, proxyProtocol },
        mode: 'tcp',
        backends: [{ id: 'raw', url: `tcp://127.0.0.1:${backend.port}` }],
        trustedProxies: ['127.0.0.1/32'],
      });
      cleanup.defer(() => wslb.stop());
      const socket = netConnect({ port: wslb.port, host: '127.0.0.1', allowHalfOpen: true });
      const received: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      const ended = new Promise((resolve) => socket.once('end', resolve));
      if (proxyProtocol) socket.write('PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n');
      socket.write('hello');
      socket.end();
      await ended;
      socket.destroy();
      assert.equal(
        Buffer.concat(received).toString('latin1'),
        'reply:hello',
        `behind a front: ${proxyProtocol}`,
      );
    }
  });

  it('sends PROXY v1/v2 headers to backends and reads one from a front balancer', async () => {
    const headers: Buffer[] = [];
    const backend = await rawBackend((socket: Socket) => {
      socket.once('data', (chunk: Buffer) => {
        headers.push(chunk);
        socket.end();
      });
    });
    cleanup.defer(() => backend.close());
    for (const version of ['v1', 'v2'] as const) {
      const proxy = await startProxy({
        mode: 'tcp',
        backends: [{ id: 'raw', url: `tcp://127.0.0.1:${backend.port}`, proxyProtocol: version }],
      });
      const socket = netConnect(proxy.port, '127.0.0.1');
      socket.write('hello');
      await new Promise((resolve) => socket.once('close', resolve));
      await proxy.close();
    }
    assert.match(headers[0]!.toString('latin1'), /^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ \d+\r\n/);
    assert.ok(
      headers[1]!.subarray(0, 12).equals(
        encodeProxyHeader('v2', {
          sourceAddress: '1.1.1.1',
          sourcePort: 1,
          destinationAddress: '1.1.1.1',
          destinationPort: 1,
        }).subarray(0, 12),
      ),
      "headers[1]!.subarray(0, 12).equals( encodeProxyHeader('v2', { sourceAddress: '1.1.1.1', sourcePor...",
    );
    assert.equal(headers[1]![13], 0x11, 'TCP over IPv4');
    assert.equal([...headers[1]!.subarray(16, 20)].join('.'), '127.0.0.1');

    // A front balancer announces the real client; it becomes X-Forwarded-For at the backend.
    const backends = await startEchoBackends(1);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const front = await runWslb({
      listen: { host: '127.0.0.1', port: 0, proxyProtocol: true },
      backends: [{ id: 'b1', url: backends[0]!.url }],
      trustedProxies: ['127.0.0.1/32'],
    });
    cleanup.defer(() => front.stop());
    const announce = async (port: number, path: string): Promise<string> => {
      const raw = netConnect(port, '127.0.0.1');
      raw.write(
        Buffer.concat([
          encodeProxyHeader('v2', {
            sourceAddress: '203.0.113.7',
            sourcePort: 40000,
            destinationAddress: '127.0.0.1',
            destinationPort: port,
          }),
          Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
        ]),
      );
      let answer = '';
      raw.on('data', (d: Buffer) => (answer += d.toString()));
      await new Promise((resolve) => raw.once('close', resolve));
      assert.match(answer, /^HTTP\/1\.1 200/);
      return backends[0]!.seen.find((s) => s.url === path)!.headers['x-forwarded-for'] as string;
    };
    assert.equal(await announce(front.port, '/announced'), '203.0.113.7');
    // From a front that is not in trustedProxies the header is read, its address not believed.
    const untrusted = await runWslb({
      listen: { host: '127.0.0.1', port: 0, proxyProtocol: true },
      backends: [{ id: 'b1', url: backends[0]!.url }],
    });
    cleanup.defer(() => untrusted.stop());
    assert.equal(await announce(untrusted.port, '/untrusted'), '127.0.0.1');
    // Without the header the connection is refused.
    const bare = netConnect(front.port, '127.0.0.1');
    bare.on('error', () => {});
    bare.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((resolve) => bare.once('close', resolve));
  });

  it('reads a PROXY header in front of TLS (wss behind a front balancer)', async () => {
    const cert = await makeCertificate();
    const files = writeCertificate(cert);
    cleanup.defer(files.remove);
    const backends = await startEchoBackends(1);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: {
        host: '127.0.0.1',
        port: 0,
        proxyProtocol: true,
        tls: { cert: files.certFile, key: files.keyFile },
      },
      backends: [{ id: 'b1', url: backends[0]!.url }],
      trustedProxies: ['127.0.0.1/32'],
    });
    cleanup.defer(() => wslb.stop());
    // A raw TCP connection carries the PROXY header, then TLS, then the upgrade.
    const raw = netConnect(wslb.port, '127.0.0.1');
    await new Promise((resolve) => raw.once('connect', resolve));
    raw.write(
      encodeProxyHeader('v1', {
        sourceAddress: '198.51.100.23',
        sourcePort: 5555,
        destinationAddress: '127.0.0.1',
        destinationPort: wslb.port,
      }),
    );
    const secure = tlsConnect({ socket: raw, ca: cert.cert, servername: 'localhost' });
    await new Promise((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    secure.write('GET /behind-front HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    let answer = '';
    secure.on('data', (d: Buffer) => (answer += d.toString()));
    await new Promise((resolve) => secure.once('close', resolve));
    assert.match(answer, /^HTTP\/1\.1 200/);
    const seen = backends[0]!.seen.find((s) => s.url === '/behind-front')!;
    assert.equal(seen.headers['x-forwarded-for'], '198.51.100.23');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
  });

  it('closes a quiet tunnel after timeouts.idle and keeps a chatty one', async () => {
    const backends = await startEchoBackends(1);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const proxy = await startProxy({
      backends: [{ id: 'b1', url: backends[0]!.url }],
      timeouts: { idle: 400 },
    });
    cleanup.defer(() => proxy.close());
    const quiet = await openClient(proxy.url);
    const chatty = await openClient(proxy.url);
    const quietClosed = closed(quiet.ws, 3000);
    for (let i = 0; i < 8; i++) {
      await roundTrip(chatty.ws, `tick ${i}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // Closed by the proxy between frames: a close frame 1001 (going away), not a dropped connection.
    assert.equal((await quietClosed).code, 1001);
    assert.equal(chatty.ws.readyState, chatty.ws.OPEN);
    await closeAll([chatty]);
    await waitFor(() => proxy.proxy.connections.active === 0);
  });
});

describe('TLS to backends', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('dials wss:// backends, verifying them against the configured CA', async () => {
    const cert = await makeCertificate();
    const files = writeCertificate(cert);
    cleanup.defer(files.remove);
    const backend = await startWssBackend(cert, (ws, req) =>
      ws.on('message', (data) =>
        ws.send(`tls backend saw ${req.headers['x-forwarded-proto']}: ${data.toString()}`),
      ),
    );
    cleanup.defer(() => backend.close());
    const port = backend.port;
    const verified = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'secure', url: `wss://localhost:${port}`, tls: { ca: files.certFile } }],
    });
    cleanup.defer(() => verified.stop());
    const client = await openClient(verified.url);
    assert.equal((await roundTrip(client.ws, 'hi')).data.toString(), 'tls backend saw http: hi');
    await closeAll([client]);

    // Without the CA the backend's certificate is refused: the dial fails and the client gets 502.
    const strict = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'secure', url: `wss://localhost:${port}` }],
    });
    cleanup.defer(() => strict.stop());
    await assert.rejects(openClient(strict.url), (err: Error & { status?: number }) => err.status === 502);
  });
});
