import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
// By the package's own name, not ../src: runWslb starts the binary with a module of dist/.
import { assertNoLeakedHandles, createCleanup, openClient, runWslb, startEchoBackend } from '@wslb/testing';

describe('runWslb', { timeout: 60_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles();
  });

  const configOver = async (extra: object = {}): Promise<object> => {
    const backend = cleanup.add(await startEchoBackend({ id: 'b1' }));
    return {
      listen: { host: '127.0.0.1', port: 0 },
      backends: [{ id: backend.id, url: backend.url }],
      ...extra,
    };
  };

  it("waits for stop() as long as the config's drain allows, plus a margin", async () => {
    const config = await configOver();
    const wslb = await runWslb(config);
    cleanup.defer(() => wslb.stop('SIGKILL'));
    // An open client holds a SIGTERM'd wslb for the whole drain: 25 s by default.
    assert.equal(wslb.stopTimeoutMs, 30_000);
    // A config written for a reload may drain longer; the longest drain counts.
    wslb.writeConfig({ ...config, timeouts: { drain: 40_000 } });
    assert.equal(wslb.stopTimeoutMs, 45_000);
    wslb.writeConfig({ ...config, timeouts: { drain: 500 } });
    assert.equal(wslb.stopTimeoutMs, 45_000);

    const short = await runWslb(await configOver({ timeouts: { drain: 300 } }));
    cleanup.defer(() => short.stop('SIGKILL'));
    assert.equal(short.stopTimeoutMs, 5_300);
    const client = await openClient(short.url);
    assert.equal(await short.stop(), 0, 'drained, then exited');
    client.ws.terminate();
  });

  it('kills a wslb that is not gone by the end of its drain plus the margin, and says so', async () => {
    const wslb = await runWslb(await configOver({ timeouts: { drain: 0 } }));
    cleanup.defer(() => wslb.stop('SIGKILL'));
    wslb.child.kill('SIGSTOP'); // a process that cannot exit
    const started = Date.now();
    await assert.rejects(wslb.stop(), /wslb did not exit within 5000 ms after SIGTERM/);
    assert.ok(Date.now() - started < 10_000, 'gave up after drain + margin');
    assert.equal(wslb.child.signalCode, 'SIGKILL');
  });
});
