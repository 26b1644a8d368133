/*
 * Soak: `npm run soak -- --minutes N [--clients 50] [--restart-every 20] [--seed S]`.
 *
 * N minutes of mixed load through a proxy in its own process: WebSocket clients that echo
 * numbered messages and check each reply, short connects, connect/abort cycles, plain HTTP
 * requests, and backends killed and restarted on their port. Prints RSS, heap (after a full GC)
 * and fds of the proxy over time, then a summary. Exits nonzero on any lost or corrupted message,
 * an unexpected failure, or a leak (fds or live connections not back to the baseline, heap grown).
 */
import { parseArgs } from 'node:util';
import { describeSoak, runSoak } from '../helpers/soak.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    clients: { type: 'string', default: '50' },
    'restart-every': { type: 'string', default: '20' },
    seed: { type: 'string' },
  },
});
const durationMs = Number(values.minutes) * 60_000;
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);

const report = await runSoak({
  durationMs,
  echoClients: Number(values.clients),
  restartEvery: Number(values['restart-every']),
  seed,
  log: (line) => console.log(line),
});
console.log(`\n${describeSoak(report, durationMs)}`);
console.log(report.ok ? `ok (seed ${seed})` : `FAILED (seed ${seed})`);
process.exit(report.ok ? 0 : 1);
