/*
 * The full fuzz run: `npm run fuzz -- [--seed N] [--count 10000] [--concurrency 32]`.
 * Replay one case: `npm run fuzz -- --seed N --case I` (prints its bytes and the answer).
 * Exits nonzero when the proxy crashed, logged a fault, or answered a case with invalid HTTP.
 */
import { parseArgs } from 'node:util';
import { closeAll, openClient, roundTrip, waitFor } from '@wslb/testing';
import { FUZZ_DEADLINE_MS, faultLines, liveAtStop, startFuzzTarget } from '../helpers/fuzz-target.js';
import { describeFailures, generateCase, runCase, runFuzz } from '../helpers/fuzz.js';
import { fdCount, hasProcfs, mib, rssBytes } from '../helpers/proc.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    count: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '32' },
    case: { type: 'string' },
  },
});
/** A whole number from an option, or exit 2 naming the option. */
function wholeNumber(name: string, text: string | undefined, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be a whole number >= ${min}, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return n;
}

const seed =
  values.seed !== undefined ? wholeNumber('seed', values.seed, 0) : Math.floor(Math.random() * 2 ** 31);
const count = wholeNumber('count', values.count, 1);
const concurrency = wholeNumber('concurrency', values.concurrency, 1);
if (values.case !== undefined) wholeNumber('case', values.case, 0);

const target = await startFuzzTarget();
const { wslb } = target;
const pid = wslb.child.pid!;
let failed = false;
try {
  if (values.case !== undefined) {
    const c = generateCase(seed, Number(values.case));
    console.log(`case ${c.index} of seed ${seed} (${c.kind}), ${c.pieces.length} piece(s), FIN ${c.end}`);
    for (const p of c.pieces) console.log(`  > ${JSON.stringify(p.toString('latin1'))}`);
    const result = await runCase(wslb.port, c, { deadlineMs: FUZZ_DEADLINE_MS });
    console.log(result);
    failed = result.problem !== undefined;
  } else {
    console.log(`fuzzing wslb (pid ${pid}) with seed ${seed}: ${count} requests, ${concurrency} at a time`);
    const fdsBefore = hasProcfs ? fdCount(pid) : 0;
    const rssBefore = hasProcfs ? rssBytes(pid) : 0;
    const report = await runFuzz({
      port: wslb.port,
      seed,
      count,
      concurrency,
      deadlineMs: FUZZ_DEADLINE_MS,
      onProgress: (done) => {
        if (done % 1000 === 0) console.log(`  ${done}/${count}`);
      },
    });
    console.log(`done in ${(report.durationMs / 1000).toFixed(1)} s`);
    console.log('cases by kind (count, avg ms):');
    for (const [kind, n] of Object.entries(report.byKind).sort()) {
      console.log(
        `  ${kind.padEnd(22)} ${String(n).padStart(6)} ${(report.msByKind[kind]! / n).toFixed(0).padStart(6)}`,
      );
    }
    console.log('answers by status:', report.byStatus, `closed without an answer: ${report.noAnswer}`);
    if (hasProcfs) {
      console.log(
        `proxy fds ${fdsBefore} -> ${fdCount(pid)}, rss ${mib(rssBefore)} -> ${mib(rssBytes(pid))}`,
      );
    }
    if (report.failures.length > 0) {
      failed = true;
      console.log(`${report.failures.length} failing case(s):\n${describeFailures(report)}`);
    }
    const faults = faultLines(wslb.logs);
    if (faults.length > 0) {
      failed = true;
      console.log(`fault lines in the proxy's log:\n${faults.map((l) => JSON.stringify(l)).join('\n')}`);
    }
    const client = await openClient(`${wslb.url}/after-fuzz`);
    const echo = await roundTrip(client.ws, 'after');
    await closeAll([client]);
    if (echo.data.toString() !== 'after') throw new Error('no echo after the fuzz run');
    console.log('a normal WebSocket still echoes');
    // The stop below counts what is still live: it waits until the proxy has finished the check
    // socket (its access line), not only until the client saw it close.
    await wslb.waitForLog((l) => l.msg === 'access' && l.url === '/after-fuzz', 5000);
    if (hasProcfs) {
      // Idle keep-alive sockets to the backends close within their 5 s timeout; nothing else stays.
      const settled = await waitFor(() => fdCount(pid) <= fdsBefore + 2, { timeoutMs: 8000 }).then(
        () => true,
        () => false,
      );
      console.log(`proxy fds after settling: ${fdCount(pid)} (baseline ${fdsBefore})`);
      if (!settled) failed = true;
    }
  }
} catch (err) {
  failed = true;
  console.error(err);
} finally {
  if (wslb.child.exitCode !== null || wslb.child.signalCode !== null) {
    failed = true;
    console.log(`the proxy exited (${wslb.child.exitCode ?? wslb.child.signalCode}):\n${wslb.output()}`);
  }
  const code = await target.close();
  const live = liveAtStop(wslb.logs);
  if (live > 0 || code !== 0) {
    failed = true;
    console.log(`the proxy still counted ${live} live connection(s) at stop (exit code ${code})`);
  }
}
console.log(failed ? `FAILED (seed ${seed})` : `ok (seed ${seed})`);
process.exit(failed ? 1 : 0);
