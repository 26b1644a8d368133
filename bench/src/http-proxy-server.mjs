// node-http-proxy as its README shows it: one http server, `ws: true` handling of upgrades and
// round-robin over the backends. Plain JavaScript so that the measured process carries no loader.
// Usage: node http-proxy-server.mjs PORT URL...
import { createServer } from 'node:http';
import httpProxy from 'http-proxy';

const port = Number(process.argv[2]);
const targets = process.argv.slice(3);
let next = 0;
const pick = () => targets[next++ % targets.length];

const proxy = httpProxy.createProxyServer({ xfwd: true });
proxy.on('error', (_err, _req, res) => {
  // res is a ServerResponse for HTTP and the client socket for upgrades.
  if (typeof res.writeHead === 'function') {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  } else {
    res.destroy();
  }
});
const server = createServer((req, res) => proxy.web(req, res, { target: pick() }));
server.on('upgrade', (req, socket, head) => proxy.ws(req, socket, head, { target: pick() }));
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
