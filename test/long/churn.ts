/*
 * The long connect/abort run: `npm run churn -- [cycles]` (default 100,000). It is the suite's
 * connect-abort test with more cycles; node:test reports and sets the exit code.
 */
process.env.WSLB_CHURN_CYCLES = process.argv[2] ?? process.env.WSLB_CHURN_CYCLES ?? '100000';
await import('../connect-abort.test.js');
