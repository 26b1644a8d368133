// The least a Node.js proxy can do per WebSocket: http.Server's 'upgrade', net.connect to the next
// backend, the request head written back out, then the two sockets piped raw both ways. No checks,
// no header rewriting, no parsing of the 101, no timers. It is no proxy to run: it marks how far
// down Node's own sockets and streams go on this machine. Usage: node node-floor.mjs PORT URL...
import { createServer } from 'node:http';
import { connect } from 'node:net';

const port = Number(process.argv[2]);
const targets = process.argv.slice(3).map((u) => new URL(u));
let next = 0;

function onUpgrade(req, client, head) {
  const target = targets[next++ % targets.length];
  const backend = connect({ host: target.hostname, port: Number(target.port) });
  let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
  for (let i = 0; i < req.rawHeaders.length; i += 2)
    text += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
  backend.setNoDelay(true);
  backend.write(`${text}\r\n`);
  if (head.length > 0) backend.write(head);
  backend.pipe(client);
  client.pipe(backend);
  backend.on('error', () => client.destroy());
  client.on('error', () => backend.destroy());
  backend.on('close', () => client.destroy());
  client.on('close', () => backend.destroy());
}

const server = createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
server.on('upgrade', onUpgrade);
server.listen({ port, host: '127.0.0.1', noDelay: true });
process.on('SIGTERM', () => process.exit(0));
