/**
 * One echo backend process: WebSocket echo (binary stays binary) and a 200 for plain HTTP (health
 * checks). Started by the harness with an IPC channel; it reports its port and exits when the
 * harness goes away.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

const id = process.argv[2] ?? 'backend';
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': id });
    res.end('ok\n');
  });
});
const wss = new WebSocketServer({
  server,
  perMessageDeflate: false,
  clientTracking: false,
  maxPayload: 64 * 1024 * 1024,
});
wss.on('headers', (headers) => headers.push(`x-backend: ${id}`));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as AddressInfo).port });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
