import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, it } from 'node:test';
import {
  createCleanup,
  assertNoLeakedHandles,
  closeAll,
  execWslb,
  openClients,
  roundTrip,
  runWslb,
  startEchoBackends,
} from '@wslb/testing';

const quickstartDir = fileURLToPath(new URL('../examples/quickstart/', import.meta.url));
const quickstartConfig = JSON.parse(readFileSync(`${quickstartDir}wslb.json`, 'utf8')) as {
  listen: { port: number };
  backends: Array<{ id: string; url: string }>;
};

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)));
  });
}

describe('examples/quickstart', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('is a valid config', async () => {
    const result = await execWslb(['--check', '--config', `${quickstartDir}wslb.json`]);
    assert.equal(result.code, 0, result.stderr);
  });

  it('balances over its three backends (same config, free ports)', async () => {
    const backends = await startEchoBackends(3, 'echo-');
    cleanup.defer(() => Promise.all(backends.map((b) => b.close())));
    const wslb = await runWslb({
      ...quickstartConfig,
      listen: { host: '127.0.0.1', port: 0 },
      backends: quickstartConfig.backends.map((b, i) => ({ ...b, url: backends[i]!.url })),
    });
    cleanup.defer(() => wslb.stop());
    const { clients, perBackend } = await openClients(wslb.url, 6);
    assert.deepEqual(perBackend, { 'echo-1': 2, 'echo-2': 2, 'echo-3': 2 });
    await closeAll(clients);
  });

  it('npm start: start.mjs serves on :8080 and stops on SIGINT', async (t) => {
    const ports = [quickstartConfig.listen.port, 9001, 9002, 9003];
    const busy = [];
    for (const p of ports) if (!(await portFree(p))) busy.push(p);
    if (busy.length > 0) {
      t.skip(`ports ${busy.join(', ')} are in use here`);
      return;
    }
    const child = spawn(process.execPath, [`${quickstartDir}start.mjs`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    try {
      const deadline = Date.now() + 15_000;
      while (!output.includes('wslb is up') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(output, /ws:\/\/localhost:8080/);
      const { clients, perBackend } = await openClients('ws://127.0.0.1:8080/', 3);
      assert.deepEqual(perBackend, { 'echo-1': 1, 'echo-2': 1, 'echo-3': 1 });
      assert.equal((await roundTrip(clients[0]!.ws, 'quick')).data.toString(), 'quick');
      await closeAll(clients);
    } finally {
      child.kill('SIGINT');
      assert.equal(await exited, 0, output);
    }
  });
});
