/*
 * The long connect/abort run: `npm run churn -- [cycles]` or `npm run churn -- --cycles N`
 * (default 100,000). It is the suite's connect-abort test with more cycles; node:test reports and
 * sets the exit code.
 */
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  options: { cycles: { type: 'string' } },
  allowPositionals: true,
});
const text = values.cycles ?? positionals[0] ?? process.env.WSLB_CHURN_CYCLES ?? '100000';
const cycles = Number(text);
if (!Number.isInteger(cycles) || cycles < 1) {
  console.error(`cycles must be a whole number >= 1, got ${JSON.stringify(text)}`);
  process.exit(2);
}
process.env.WSLB_CHURN_CYCLES = String(cycles);
await import('../connect-abort.test.js');
