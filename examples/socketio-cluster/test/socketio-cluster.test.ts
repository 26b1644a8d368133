import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { createCleanup, assertNoLeakedHandles, runWslb } from '@wslb/testing';
import { runClients } from '../src/clients.js';
import { type ChatServer, startSocketIoServer } from '../src/server.js';

describe('a socket.io cluster behind the wslb binary', { timeout: 90_000 }, () => {
  const cleanup = createCleanup();
  afterEach(async () => {
    await cleanup.run();
    await assertNoLeakedHandles(3000);
  });

  /** Three socket.io servers (default transports) behind wslb with the given plugins. */
  async function cluster(plugins: unknown[]) {
    const servers: ChatServer[] = [];
    for (const id of ['io-1', 'io-2', 'io-3']) servers.push(await startSocketIoServer(id));
    cleanup.defer(() => Promise.all(servers.map((s) => s.close())));
    const wslb = await runWslb({
      listen: { host: '127.0.0.1', port: 0 },
      backends: servers.map((s) => ({ id: s.id, url: s.url })),
      plugins,
      log: { access: false },
      // Sessions broken by round-robin leave long-polls open on the servers: do not wait for them.
      timeouts: { drain: 500 },
    });
    cleanup.defer(() => wslb.stop());
    return { servers, wslb };
  }

  it('50 clients poll, upgrade to WebSocket and get every event acknowledged with sticky-sessions', async () => {
    const { wslb } = await cluster([{ use: 'sticky-sessions' }, 'round-robin']);
    const run = await runClients(wslb.httpUrl, 50, { events: 3, timeoutMs: 15_000 });
    cleanup.defer(() => run.close());
    const failures = run.results.filter((r) => !r.ok).map((r) => r.error);
    assert.deepEqual(failures, [], 'no client failed');
    // The balancer still spreads the sessions: round-robin chose each one's server.
    const perServer: Record<string, number> = {};
    for (const r of run.results) perServer[r.server!] = (perServer[r.server!] ?? 0) + 1;
    assert.equal(Object.keys(perServer).length, 3, JSON.stringify(perServer));
    for (const n of Object.values(perServer)) assert.ok(n >= 10, JSON.stringify(perServer));
  });

  it('the same 50 clients with round-robin alone break: polls and upgrades land on servers without the session', async () => {
    const { wslb } = await cluster(['round-robin']);
    const run = await runClients(wslb.httpUrl, 50, { events: 3, timeoutMs: 3000 });
    cleanup.defer(() => run.close());
    const failed = run.results.filter((r) => !r.ok);
    assert.ok(
      failed.length >= 40,
      `only ${failed.length} of 50 failed: ${JSON.stringify(failed.slice(0, 3))}`,
    );
    // The servers answer 400 "Session ID unknown" to requests of sessions they did not issue.
    assert.ok(
      failed.some((r) => /xhr (poll|post) error|upgrade failed/.test(r.error ?? '')),
      JSON.stringify(failed.slice(0, 3)),
    );
  });
});
