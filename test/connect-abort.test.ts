import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type EchoBackend,
  assertNoLeakedHandles,
  closeAll,
  openClient,
  roundTrip,
  startEchoBackend,
  waitFor,
} from '@wslb/testing';
import { churn } from './helpers/churn.js';
import { mib } from './helpers/proc.js';
import { type ProxyProcess, startProxyProcess } from './helpers/proxy-process.js';

/*
 * Connect/abort cycles against a proxy in its own process (heap measured after a full GC).
 * The suite runs 20,000; `npm run churn` runs 100,000 (WSLB_CHURN_CYCLES sets the number).
 */
const CYCLES = Number(process.env.WSLB_CHURN_CYCLES ?? 20_000);
const WARMUP = 3000;
/** Heap growth allowed between the warmed-up baseline and the end (a leaked context per cycle is far more). */
const MAX_HEAP_GROWTH = 2 * 1024 * 1024;

describe(
  `${CYCLES} connect/abort cycles`,
  { timeout: Math.max(120_000, CYCLES * 3), skip: process.platform !== 'linux' && 'needs /proc' },
  () => {
    let backends: EchoBackend[];
    let proxy: ProxyProcess;

    before(async () => {
      // Two addresses: the proxy's own connections to the backends spread over both.
      backends = [
        await startEchoBackend({ id: 'b1', host: '127.0.0.1' }),
        await startEchoBackend({ id: 'b2', host: '127.0.0.2' }),
      ];
      proxy = await startProxyProcess({ backends: backends.map((b) => ({ id: b.id, url: b.url })) });
    });

    after(async () => {
      await proxy.close();
      await Promise.all(backends.map((b) => b.close()));
      await assertNoLeakedHandles();
    });

    it('leave no fd, no heap growth and no live connection behind', async () => {
      await churn(proxy.port, WARMUP, { seed: 1 });
      const settled = async (): Promise<Awaited<ReturnType<ProxyProcess['stats']>>> =>
        waitFor(
          async () => {
            const s = await proxy.stats(false);
            return s.active === 0 && s.backends.every((b) => b.active === 0) ? s : undefined;
          },
          { timeoutMs: 5000, message: 'no live connection in the proxy' },
        );
      await settled();
      const before = await proxy.stats();

      const done = await churn(proxy.port, CYCLES, { seed: 2 });
      assert.equal(
        Object.values(done).reduce((a, b) => a + b, 0),
        CYCLES,
      );
      await settled();
      // fds: the proxy's listener and keep-alive sockets are part of the baseline; nothing else stays.
      const afterCycles = await waitFor(
        async () => {
          const s = await proxy.stats();
          return s.fds <= before.fds ? s : undefined;
        },
        { timeoutMs: 8000, message: `fds back to ${before.fds}` },
      );
      const growth = afterCycles.heapUsed - before.heapUsed;
      console.log(
        `# ${CYCLES} cycles ${JSON.stringify(done)}: heap ${mib(before.heapUsed)} -> ${mib(afterCycles.heapUsed)}, fds ${before.fds} -> ${afterCycles.fds}, contexts ${afterCycles.total - before.total}`,
      );
      assert.ok(growth < MAX_HEAP_GROWTH, `heap grew by ${mib(growth)} over ${CYCLES} cycles`);
      assert.ok(afterCycles.total - before.total > CYCLES / 4, 'most cycles reached the proxy request path');

      // And it still serves.
      const client = await openClient(proxy.url);
      assert.equal((await roundTrip(client.ws, 'alive')).data.toString(), 'alive');
      await closeAll([client]);
    });
  },
);
