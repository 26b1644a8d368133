import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertNoLeakedHandles, closeAll, openClient, roundTrip, waitFor } from '@wslb/testing';
import {
  FUZZ_DEADLINE_MS,
  type FuzzTarget,
  faultLines,
  liveAtStop,
  startFuzzTarget,
} from './helpers/fuzz-target.js';
import { checkResponses, describeFailures, digestCases, generateCase, runFuzz } from './helpers/fuzz.js';
import { fdCount, hasProcfs } from './helpers/proc.js';

/*
 * The short fuzz run of the suite (the full 10,000-request run is `npm run fuzz`). The seed is
 * fixed so the suite is repeatable; WSLB_FUZZ_SEED and WSLB_FUZZ_COUNT change it.
 */
const SEED = Number(process.env.WSLB_FUZZ_SEED ?? 20_240_611);
const COUNT = Number(process.env.WSLB_FUZZ_COUNT ?? 1500);

describe('fuzzer', () => {
  it('generates the same bytes for the same seed and case', () => {
    assert.equal(digestCases(7, 200), digestCases(7, 200));
    assert.notEqual(digestCases(7, 200), digestCases(8, 200));
    assert.deepEqual(generateCase(7, 123), generateCase(7, 123));
  });

  it('tells valid answers from invalid ones', () => {
    const ok = Buffer.from(
      'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhiHTTP/1.1 408 Request Timeout\r\n\r\n',
    );
    assert.deepEqual(checkResponses(ok), { statuses: [200, 408] });
    assert.deepEqual(checkResponses(Buffer.from('HTTP/1.1 101 Switching\r\n\r\n\x81\x02hi')), {
      statuses: [101],
    });
    assert.ok(
      checkResponses(Buffer.from('garbage')).problem,
      "checkResponses(Buffer.from('garbage')).problem",
    );
    assert.ok(
      checkResponses(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhi')).problem,
      "checkResponses(Buffer.from('HTTP/1.1 200 OK\\r\\ncontent-length: 5\\r\\n\\r\\nhi')).problem",
    );
    assert.ok(
      checkResponses(Buffer.from('HTTP/1.1 200 OK\r\nbad header\r\n\r\n')).problem,
      "checkResponses(Buffer.from('HTTP/1.1 200 OK\\r\\nbad header\\r\\n\\r\\n')).problem",
    );
    assert.ok(
      checkResponses(Buffer.from('HTTP/1.1 400 Bad\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200')).problem,
      "checkResponses(Buffer.from('HTTP/1.1 400 Bad\\r\\ncontent-length: 0\\r\\n\\r\\nHTTP/1.1 200')).problem",
    );
  });
});

describe(`fuzzing the binary (seed ${SEED}, ${COUNT} requests)`, { timeout: 90_000 }, () => {
  let target: FuzzTarget;

  before(async () => {
    target = await startFuzzTarget();
  });

  after(async () => {
    await target?.close();
    await assertNoLeakedHandles();
  });

  it('survives every request, answers each with valid HTTP or a close, and serves normally after', async () => {
    const { wslb } = target;
    const pid = wslb.child.pid!;
    // Warm up the paths once so lazily opened handles are in the baseline.
    const warm = await openClient(`${wslb.url}/warm`);
    await roundTrip(warm.ws, 'warm');
    await closeAll([warm]);
    await (await fetch(`${wslb.httpUrl}/warm`)).text();
    const fdsBefore = hasProcfs ? fdCount(pid) : 0;

    const report = await runFuzz({ port: wslb.port, seed: SEED, count: COUNT, deadlineMs: FUZZ_DEADLINE_MS });
    assert.equal(wslb.child.exitCode, null, `the proxy exited:\n${wslb.output()}`);
    assert.equal(wslb.child.signalCode, null);
    assert.deepEqual(report.failures, [], `fuzz failures (seed ${SEED}):\n${describeFailures(report)}`);
    assert.deepEqual(faultLines(wslb.logs), [], 'no uncaught fault or error line in the logs');
    // The run reached every path: answers of the proxy itself, the backends, and tunnels.
    for (const status of ['101', '200', '400']) assert.ok(report.byStatus[status], `some ${status} answers`);

    const client = await openClient(`${wslb.url}/after`);
    assert.equal((await roundTrip(client.ws, 'still fine')).data.toString(), 'still fine');
    await closeAll([client]);
    const res = await fetch(`${wslb.httpUrl}/after`);
    assert.equal(res.status, 200);
    await res.text();
    if (hasProcfs) {
      // Idle keep-alive sockets to the backends close within their 5 s timeout; nothing else stays.
      await waitFor(() => fdCount(pid) <= fdsBefore + 2, {
        timeoutMs: 8000,
        message: `fds back to ${fdsBefore} (now ${fdCount(pid)})`,
      });
    }
    // With every client gone the proxy counts no live connection: it stops at once, nothing to drain.
    assert.equal(await wslb.stop(), 0);
    assert.equal(liveAtStop(wslb.logs), 0, 'connections still counted live after every client left');
  });
});
