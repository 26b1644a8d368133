import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type EchoBackend,
  assertNoLeakedHandles,
  closeAll,
  openClient,
  openClients,
  startEchoBackends,
} from '@wslb/testing';
import { createLogger } from '@wslb/core';
import { adminRoute } from '../src/proxy.js';
import { createProxy } from '@wslb/core';
import roundRobin from '@wslb/round-robin';

describe('examples/compose-in-code', { timeout: 30_000 }, () => {
  let backends: EchoBackend[];
  let proxy: ReturnType<typeof createProxy>;
  let url: string;

  before(async () => {
    backends = await startEchoBackends(3);
    proxy = createProxy(
      {
        listen: { host: '127.0.0.1', port: 0 },
        backends: backends.map((b) => ({ id: b.id, url: b.url })),
        plugins: [adminRoute('b1'), roundRobin()],
      },
      { logger: createLogger({ level: 'silent' }) },
    );
    const [address] = await proxy.listen();
    url = `ws://127.0.0.1:${address!.port}`;
  });

  after(async () => {
    await proxy.close({ drain: 0 });
    await Promise.all(backends.map((b) => b.close()));
    await assertNoLeakedHandles();
  });

  it('pins /admin/ sockets to b1 and balances the rest', async () => {
    const admin = await openClients(`${url}/admin/console`, 6, {
      headers: { authorization: 'Bearer let-me-in' },
    });
    assert.deepEqual(admin.perBackend, { b1: 6 });
    const users = await openClients(`${url}/chat`, 6);
    assert.deepEqual(users.perBackend, { b1: 2, b2: 2, b3: 2 });
    await closeAll([...admin.clients, ...users.clients]);
  });

  it('turns away /admin/ sockets without the token with 401', async () => {
    await assert.rejects(
      openClient(`${url}/admin/console`),
      (err: Error & { status?: number }) => err.status === 401,
    );
  });
});
