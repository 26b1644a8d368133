import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { ConnectionContext, Plugin } from '@wslb/core';
import roundRobin from '@wslb/round-robin';
import {
  type EchoBackend,
  type TestProxy,
  assertNoLeakedHandles,
  closeAll,
  openClient,
  roundTrip,
  startEchoBackends,
  startProxy,
  waitFor,
} from '@wslb/testing';

/** What an idle tunnel keeps of its request: taps before and at open see it all, later ones the line. */
describe('what an open tunnel keeps of its request', { timeout: 30_000 }, () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
    await assertNoLeakedHandles();
  });

  it('shows the headers to open taps, then keeps method and url only for the close hook', async () => {
    const seen: Record<string, unknown> = {};
    const recorder: Plugin = {
      name: 'recorder',
      apply(proxy) {
        proxy.hooks.open.tap('recorder', (ctx: ConnectionContext) => {
          seen.openHeader = ctx.request?.headers['x-session'];
        });
        proxy.hooks.close.tap('recorder', (ctx: ConnectionContext) => {
          seen.close = { ...ctx.request, headers: { ...ctx.request?.headers } };
        });
      },
    };
    const backends: EchoBackend[] = await startEchoBackends(1);
    cleanup.push(async () => void (await Promise.all(backends.map((b) => b.close()))));
    const proxy: TestProxy = await startProxy({
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      plugins: [roundRobin(), recorder],
    });
    cleanup.push(() => proxy.close());

    const client = await openClient(`${proxy.url}/room/7?user=ana`, { headers: { 'x-session': 'abc' } });
    // The backend still got the header, and the tunnel carries data after the release.
    assert.equal(backends[0]!.seen.at(-1)!.headers['x-session'], 'abc');
    assert.equal((await roundTrip(client.ws, 'ping')).data.toString(), 'ping');
    assert.equal(seen.openHeader, 'abc');
    await closeAll([client]);
    await waitFor(() => seen.close, { message: 'close hook' });
    assert.deepEqual(seen.close, { method: 'GET', url: '/room/7?user=ana', headers: {} });
  });
});
