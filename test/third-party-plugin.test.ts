import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, it } from 'node:test';
import {
  assertNoLeakedHandles,
  closeAll,
  createCleanup,
  execWslb,
  openClients,
  runWslb,
  startEchoBackend,
  upgradeRequest,
  webSocketKey,
} from '@wslb/testing';

const pluginPackage = fileURLToPath(new URL('../examples/wslb-plugin-least-latency', import.meta.url));

/**
 * A folder laid out as an operator would have it: the plugin package installed in its
 * node_modules (a link to the example package), the config file and local plugin files beside.
 */
function operatorFolder(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'wslb-third-party-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(pluginPackage, join(dir, 'node_modules', 'wslb-plugin-least-latency'), 'dir');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

function writeConfig(dir: string, config: object): string {
  const file = join(dir, 'wslb.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

const upgradeHeaders = (): Record<string, string> => ({
  'sec-websocket-key': webSocketKey(),
  'sec-websocket-version': '13',
});

/** A local plugin that logs every sample least-latency publishes (its hooks, across packages). */
const LATENCY_LOGGER = `
import { getHooks } from 'wslb-plugin-least-latency';
export default function latencyLogger() {
  return {
    name: 'latency-logger',
    dependencies: ['least-latency'],
    apply(proxy) {
      getHooks(proxy).sample.tap('latency-logger', (s) => {
        proxy.log.info({ backend: s.backend.id, ms: Math.round(s.ms), failed: s.failed }, 'latency sample');
      });
    },
  };
}
`;

describe('a third-party plugin package through the wslb binary', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  it('loads wslb-plugin-least-latency by package name from the config folder and balances with it', async () => {
    const fast = cleanup.add(await startEchoBackend({ id: 'fast' }));
    const slow = cleanup.add(await startEchoBackend({ id: 'slow', upgradeDelayMs: 300 }));
    const dir = operatorFolder({ 'latency-logger.mjs': LATENCY_LOGGER });
    cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
    const config = {
      listen: { host: '127.0.0.1', port: 0 },
      backends: [
        { id: 'fast', url: fast.url },
        { id: 'slow', url: slow.url },
      ],
      plugins: [
        { use: 'wslb-plugin-least-latency', options: { decay: 10000, failurePenalty: 3000 } },
        './latency-logger.mjs',
      ],
    };
    const check = await execWslb(['--check', '--config', writeConfig(dir, config)]);
    assert.equal(check.code, 0, check.stderr);

    const wslb = await runWslb(config, { dir });
    cleanup.defer(async () => assert.equal(await wslb.stop('SIGTERM'), 0));
    const { clients, perBackend } = await openClients(wslb.url, 8);
    assert.deepEqual(perBackend, { fast: 7, slow: 1 });
    // The local plugin got least-latency's samples through getHooks(proxy).
    const sample = await wslb.waitForLog((l) => l.msg === 'latency sample' && l.backend === 'slow');
    assert.ok((sample.ms as number) >= 250, `slow sampled at ${sample.ms} ms`);
    await closeAll(clients);
  });

  it('rejects options its schema refuses, naming the JSON path (exit 2)', async () => {
    const dir = operatorFolder();
    cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
    const file = writeConfig(dir, {
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'a', url: 'ws://127.0.0.1:9' }],
      plugins: [{ use: 'wslb-plugin-least-latency', options: { decay: 0, colour: 'red' } }],
    });
    for (const args of [
      ['--check', '--config', file],
      ['--config', file],
    ]) {
      const result = await execWslb(args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /\/plugins\/0\/options\/decay: must be >= 1/);
      assert.match(result.stderr, /\/plugins\/0\/options: unknown property "colour"/);
    }
  });

  const registrationFaults: Array<{ name: string; files?: Record<string, string>; plugins: unknown[] }> = [
    {
      name: 'WSLB_ERR_PLUGIN_DUPLICATE',
      plugins: ['wslb-plugin-least-latency', { use: 'wslb-plugin-least-latency', options: {} }],
    },
    {
      name: 'WSLB_ERR_PLUGIN_DEPENDENCY',
      files: { 'latency-logger.mjs': LATENCY_LOGGER },
      plugins: ['round-robin', './latency-logger.mjs'],
    },
    {
      name: 'WSLB_ERR_PLUGIN_CORE_VERSION',
      files: {
        'from-the-future.mjs':
          "export default () => ({ name: 'from-the-future', core: '>=2.0.0', apply() {} });\n",
      },
      plugins: ['./from-the-future.mjs'],
    },
  ];
  for (const fault of registrationFaults) {
    it(`refuses to start with ${fault.name}, in --check too (exit 2)`, async () => {
      const dir = operatorFolder(fault.files);
      cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
      const file = writeConfig(dir, {
        listen: { host: '127.0.0.1', port: 0 },
        backends: [{ id: 'a', url: 'ws://127.0.0.1:9' }],
        plugins: fault.plugins,
      });
      for (const args of [
        ['--check', '--config', file],
        ['--config', file],
      ]) {
        const result = await execWslb(args);
        assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
        assert.match(result.stderr, new RegExp(`^wslb: ${fault.name}: plugin "`, 'm'));
        assert.doesNotMatch(result.stdout, /"msg":"listening"/);
      }
    });
  }

  it('exits 1 with WSLB_ERR_PLUGIN_TIMEOUT when a plugin apply() hangs', async () => {
    const dir = operatorFolder({
      'stuck.mjs': "export default () => ({ name: 'stuck', apply: () => new Promise(() => {}) });\n",
    });
    cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
    const file = writeConfig(dir, {
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: 'a', url: 'ws://127.0.0.1:9' }],
      plugins: ['./stuck.mjs'],
      timeouts: { plugin: 200 },
    });
    const result = await execWslb(['--config', file]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      /WSLB_ERR_PLUGIN_TIMEOUT: plugin "stuck" did not finish apply\(\) within 200 ms/,
    );
  });

  it('fails only the connection whose tap hangs, and logs its code', async () => {
    const backend = cleanup.add(await startEchoBackend({ id: 'b1' }));
    const dir = operatorFolder({
      'gate.mjs': `export default () => ({
  name: 'gate',
  apply(proxy) {
    proxy.hooks.connect.tapPromise('gate', (ctx) =>
      ctx.request.url === '/hang' ? new Promise(() => {}) : Promise.resolve(undefined));
  },
});
`,
    });
    cleanup.defer(() => rmSync(dir, { recursive: true, force: true }));
    const wslb = await runWslb(
      {
        listen: { host: '127.0.0.1', port: 0 },
        backends: [{ id: 'b1', url: backend.url }],
        plugins: ['./gate.mjs', 'wslb-plugin-least-latency'],
        timeouts: { hook: 200 },
      },
      { dir },
    );
    cleanup.defer(async () => assert.equal(await wslb.stop('SIGTERM'), 0));
    const hung = await upgradeRequest(`${wslb.url}/hang`, upgradeHeaders());
    assert.equal(hung.status, 500);
    await wslb.waitForLog((l) => l.code === 'WSLB_ERR_TAP_TIMEOUT' && l.msg === 'access');
    const { clients, perBackend } = await openClients(`${wslb.url}/fine`, 2);
    assert.deepEqual(perBackend, { b1: 2 });
    await closeAll(clients);
  });
});
