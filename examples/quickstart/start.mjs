// The quickstart: three demo echo backends on 127.0.0.1:9001-9003 and the wslb binary on :8080
// with wslb.json beside this file. Ctrl-C stops everything.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEchoBackend, wslbBinPath } from '@wslb/testing';

const here = dirname(fileURLToPath(import.meta.url));
const backends = [];
for (const [id, port] of [
  ['echo-1', 9001],
  ['echo-2', 9002],
  ['echo-3', 9003],
]) {
  try {
    backends.push(await startEchoBackend({ id, port }));
  } catch (err) {
    console.error(`cannot start demo backend ${id} on 127.0.0.1:${port}: ${err.message}`);
    for (const b of backends) await b.close();
    process.exit(1);
  }
}

const wslb = spawn(process.execPath, [wslbBinPath(), '--config', join(here, 'wslb.json')], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let announced = false;
wslb.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  if (!announced && chunk.toString().includes('"msg":"listening"')) {
    announced = true;
    console.log(`
wslb is up: 3 demo echo backends on 127.0.0.1:9001-9003, balanced round-robin on :8080

  WebSocket   ws://localhost:8080/    (every message is echoed back)
  HTTP        curl -i http://localhost:8080/hello    (the answer names the backend)
  Try         node examples/quickstart/client.mjs    (6 sockets, shows which backend got each)

Config: examples/quickstart/wslb.json. Ctrl-C drains and stops.
`);
  }
});

let stopping = false;
const stop = (signal) => {
  if (stopping) return;
  stopping = true;
  wslb.kill(signal);
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
wslb.on('exit', async (code) => {
  for (const b of backends) await b.close();
  process.exit(code ?? 0);
});
