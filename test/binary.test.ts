import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import {
  createCleanup,
  assertNoLeakedHandles,
  closeAll,
  closed,
  execWslb,
  openClient,
  openClients,
  roundTrip,
  runWslb,
  startEchoBackends,
  upgradeRequest,
  waitFor,
  webSocketKey,
  writeTempConfig,
  wslbBinPath,
} from '@wslb/testing';
import { rawExchange } from './helpers/raw.js';
import { deadPort } from './helpers/servers.js';

const cliPackage = JSON.parse(
  readFileSync(new URL('../packages/cli/package.json', import.meta.url), 'utf8'),
) as {
  version: string;
};

describe('the wslb binary', { timeout: 120_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('balances 30 sockets 10/10/10 from a JSON config, with path, query and X-Forwarded-For', async () => {
    const backends = await startEchoBackends(3);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      plugins: ['round-robin'],
    });
    cleanup.defer(() => wslb.stop());
    const { clients, perBackend } = await openClients(`${wslb.url}/feed?topic=x`, 30);
    assert.deepEqual(perBackend, { b1: 10, b2: 10, b3: 10 });
    // By path: a port freed by another test may still get that test's health checks at '/'.
    const seen = backends[0]!.seen.find((s) => s.kind === 'ws' && s.url.startsWith('/feed'))!;
    assert.equal(seen.url, '/feed?topic=x');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal((await roundTrip(clients[0]!.ws, 'via the binary')).data.toString(), 'via the binary');
    await closeAll(clients);
    // One access line per closed connection.
    await wslb.waitForLog((l) => l.msg === 'access' && l.status === 101 && l.kind === 'ws');
    // A request refused before it could be parsed is logged too, as nginx logs its 400s.
    const garbage = await rawExchange(wslb.port, ['\x16\x03\x01 not http\r\n\r\n']);
    assert.equal(garbage.status, 400);
    const line = await wslb.waitForLog((l) => l.msg === 'access' && l.status === 400);
    assert.equal(line.code, 'WSLB_ERR_BAD_REQUEST');
    assert.equal(line.client, '127.0.0.1');
    assert.equal(line.reason, 'rejected');
  });

  it('uses round-robin when no balancing plugin is configured', async () => {
    const backends = await startEchoBackends(2);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
    });
    cleanup.defer(() => wslb.stop());
    const { clients, perBackend } = await openClients(wslb.url, 4);
    assert.deepEqual(perBackend, { b1: 2, b2: 2 });
    await closeAll(clients);
  });

  it('skips a dead backend and answers 502 when all are dead', async () => {
    const backends = await startEchoBackends(1);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [
        { id: 'dead', url: `ws://127.0.0.1:${await deadPort()}` },
        { id: 'b1', url: backends[0]!.url },
      ],
      retries: 1,
    });
    cleanup.defer(() => wslb.stop());
    const { clients, perBackend } = await openClients(wslb.url, 4);
    assert.deepEqual(perBackend, { b1: 4 });
    await closeAll(clients);

    const allDead = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'dead', url: `ws://127.0.0.1:${await deadPort()}` }],
    });
    cleanup.defer(() => allDead.stop());
    const answer = await upgradeRequest(allDead.url, {
      'sec-websocket-key': webSocketKey(),
      'sec-websocket-version': '13',
    });
    assert.equal(answer.status, 502);
  });

  it('exits 0 on SIGTERM with live tunnels, closing them', async () => {
    const backends = await startEchoBackends(1);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'b1', url: backends[0]!.url }],
      timeouts: { drain: 300 },
    });
    const clients = await Promise.all([openClient(wslb.url), openClient(wslb.url)]);
    const closes = clients.map((c) => closed(c.ws, 10_000));
    const code = await wslb.stop('SIGTERM');
    assert.equal(code, 0);
    await Promise.all(closes);
    await waitFor(() => backends[0]!.clients.size === 0, { message: 'backend sockets closed' });
  });

  it('still stops on SIGTERM when whoever read its logs went away', async () => {
    const { file } = writeTempConfig({
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ url: 'ws://127.0.0.1:9' }],
    });
    const child = spawn(process.execPath, [wslbBinPath(), '--config', file], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise((resolve) => child.stdout.once('data', resolve));
    // The log reader disappears: later log writes hit a closed socket (EPIPE/EAGAIN).
    child.stdout.destroy();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    try {
      assert.equal(await exited, 0);
    } finally {
      clearTimeout(timer);
    }
  });

  it('exits 2 naming each JSON path of an invalid config', async () => {
    const { file } = writeTempConfig({
      listen: { port: 'eighty' },
      backends: [{ url: 'not a url' }, { url: 'ws://127.0.0.1:1', weight: 0 }],
      timeouts: { connect: -1 },
      bogus: true,
    });
    const result = await execWslb(['--config', file]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^wslb: WSLB_ERR_CONFIG_INVALID: .*: invalid config$/m);
    assert.match(result.stderr, /\/backends\/0\/url: must match format "uri"/);
    assert.match(result.stderr, /\/listen\/port: must be integer/);
    assert.match(result.stderr, /\/backends\/1\/weight: must be >= 1/);
    assert.match(result.stderr, /\/timeouts\/connect: must be >= 0/);
    assert.match(result.stderr, /\/: unknown property "bogus"/);
  });

  it('exits 2 on an invalid plugin option, naming its path', async () => {
    const { file } = writeTempConfig({
      backends: [{ url: 'ws://127.0.0.1:1' }],
      plugins: [{ use: 'round-robin', options: { nope: 1 } }, 'no-such-plugin'],
    });
    const result = await execWslb(['--check', '--config', file]);
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /\/plugins\/1: WSLB_ERR_PLUGIN_NOT_FOUND: cannot find plugin "no-such-plugin"/,
    );
  });

  it('exits 2 on unparsable JSON, with no stack trace', async () => {
    const { file } = writeTempConfig('{ "backends": [ }');
    const result = await execWslb(['--config', file]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /invalid JSON/);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });

  it('exits 2 on a missing config file and on unknown arguments', async () => {
    const missing = await execWslb(['--config', '/nonexistent/wslb.json']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read config/);
    const unknown = await execWslb(['--frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown argument/);
  });

  it('exits 1 when the port is in use', async () => {
    const backends = await startEchoBackends(1);
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const { file } = writeTempConfig({
      listen: { host: '127.0.0.1', port: backends[0]!.port },
      backends: [{ url: backends[0]!.url }],
    });
    const result = await execWslb(['--config', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^wslb: WSLB_ERR_LISTEN: cannot listen on .*EADDRINUSE/m);
    assert.match(result.stdout, /"code":"WSLB_ERR_LISTEN"/);
  });

  it('--check validates, --version, --help and --print-schema answer', async () => {
    const { file } = writeTempConfig({ backends: [{ url: 'ws://127.0.0.1:9' }], plugins: ['round-robin'] });
    const check = await execWslb(['--check', '--config', file]);
    assert.equal(check.code, 0);
    assert.match(check.stdout, /ok/);
    const version = await execWslb(['--version']);
    assert.equal(version.stdout.trim(), cliPackage.version);
    const help = await execWslb(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--config FILE/);
    const schema = await execWslb(['--print-schema']);
    assert.equal(schema.code, 0);
    const parsed = JSON.parse(schema.stdout) as { properties: Record<string, unknown> };
    assert.ok(
      parsed.properties.backends && parsed.properties.listen && parsed.properties.plugins,
      'parsed.properties.backends && parsed.properties.listen && parsed.properties.plugins',
    );
    assert.match(schema.stdout, /round-robin/);
  });
});
