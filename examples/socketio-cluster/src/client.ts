// `node dist/client.js [URL] [COUNT]`: COUNT socket.io clients through wslb (default
// http://127.0.0.1:8080, 10); each connects, upgrades to WebSocket and exchanges acknowledged
// events. Prints which server served each and exits 1 if any failed.
import { runClients } from './clients.js';

const url = process.argv[2] ?? 'http://127.0.0.1:8080';
const count = Number(process.argv[3] ?? 10);
const run = await runClients(url, count);
run.results.forEach((r, i) =>
  console.log(`client ${i}: ${r.ok ? `ok on ${r.server}` : `FAILED: ${r.error}`}`),
);
run.close();
const failed = run.results.filter((r) => !r.ok).length;
console.log(`${count - failed} ok, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
