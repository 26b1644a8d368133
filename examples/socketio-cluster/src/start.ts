// The example: three socket.io servers on 127.0.0.1:3001-3003 and the wslb binary on :8080 with
// wslb.json (sticky-sessions + round-robin). Ctrl-C stops everything.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wslbBinPath } from '@wslb/testing';
import { type ChatServer, startSocketIoServer } from './server.js';

const here = dirname(fileURLToPath(import.meta.url));
const servers: ChatServer[] = [];
for (const [id, port] of [
  ['io-1', 3001],
  ['io-2', 3002],
  ['io-3', 3003],
] as const) {
  try {
    servers.push(await startSocketIoServer(id, port));
  } catch (err) {
    console.error(`cannot start socket.io server ${id} on 127.0.0.1:${port}: ${(err as Error).message}`);
    for (const s of servers) await s.close();
    process.exit(1);
  }
}

// Its own process group: a Ctrl-C reaches this script only, which passes it on once (a second
// signal would make wslb skip draining).
const wslb = spawn(process.execPath, [wslbBinPath(), '--config', join(here, '..', 'wslb.json')], {
  stdio: ['ignore', 'inherit', 'inherit'],
  detached: true,
});
console.log(`socket.io servers on 127.0.0.1:3001-3003, wslb on :8080 with sticky sessions.
  Browser: http://localhost:8080/
  Clients: node ${join(here, 'client.js')} http://127.0.0.1:8080 20`);

let stopping = false;
const stop = (signal: NodeJS.Signals): void => {
  if (stopping) return;
  stopping = true;
  wslb.kill(signal);
};
process.once('exit', () => {
  if (wslb.exitCode === null) wslb.kill('SIGKILL');
});
process.once('SIGINT', () => stop('SIGINT'));
process.once('SIGTERM', () => stop('SIGTERM'));
wslb.on('exit', async (code) => {
  for (const s of servers) await s.close();
  process.exit(code ?? 0);
});
