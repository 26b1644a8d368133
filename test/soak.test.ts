import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertNoLeakedHandles } from '@wslb/testing';
import { describeSoak, runSoak } from './helpers/soak.js';

/*
 * A few seconds of the soak's mixed load (echo clients, short connects, connect/abort cycles,
 * plain HTTP, a backend restart), so races between paths show up in the suite; the long run is
 * `npm run soak -- --minutes N`.
 */
const DURATION_MS = Number(process.env.WSLB_SOAK_MS ?? 8000);

describe('mixed load', { timeout: 60_000, skip: process.platform !== 'linux' && 'needs /proc' }, () => {
  it('loses no message and leaves no connection counted, fd or heap behind', async () => {
    const report = await runSoak({
      durationMs: DURATION_MS,
      echoClients: 20,
      restartEvery: DURATION_MS / 2000,
      seed: Number(process.env.WSLB_SOAK_SEED ?? 7),
      sampleEvery: 2000,
    });
    const summary = describeSoak(report, DURATION_MS);
    console.log(summary.replace(/^/gm, '# '));
    assert.equal(report.crashed, undefined);
    assert.deepEqual(report.errors, {}, summary);
    assert.deepEqual(report.leaks, [], summary);
    assert.ok(report.counts.messagesEchoed > 1000, 'the load really ran');
    assert.ok(report.counts.restarts >= 1, 'a backend was restarted');
    await assertNoLeakedHandles();
  });
});
