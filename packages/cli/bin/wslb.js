#!/usr/bin/env node
import { main } from '../dist/main.js';

// Exit once stdout and stderr are flushed (both are asynchronous when they are pipes), but never
// wait for them forever: a log reader that went away must not keep a stopped proxy alive.
function exit(code) {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 1000);
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

main(process.argv.slice(2)).then(exit, (err) => {
  process.stderr.write(`wslb: ${err instanceof Error ? err.message : String(err)}\n`);
  exit(1);
});
