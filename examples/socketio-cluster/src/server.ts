import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';

/** One socket.io server of the cluster. */
export interface ChatServer {
  id: string;
  port: number;
  /** `http://127.0.0.1:port`, the backend url for wslb. */
  url: string;
  io: Server;
  close(): Promise<void>;
}

/** What the `echo` event acknowledges: who answered, over which transport, with what. */
export interface EchoAck {
  server: string;
  transport: string;
  payload: unknown;
}

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>wslb + socket.io</title>
<pre id="log"></pre>
<script src="/socket.io/socket.io.js"></script>
<script>
  const log = (line) => (document.getElementById('log').textContent += line + '\\n');
  const socket = io({ withCredentials: true });
  socket.on('connect', () => log('connected, transport: ' + socket.io.engine.transport.name));
  socket.io.engine.on('upgrade', (t) => log('upgraded to ' + t.name));
  setInterval(async () => {
    const ack = await socket.timeout(2000).emitWithAck('echo', Date.now());
    log('ack from ' + ack.server + ' over ' + ack.transport);
  }, 2000);
</script>
`;

/**
 * A socket.io server with the default transports (long-polling first, then the upgrade to
 * WebSocket). Sessions live in this process only: every request of a session, the polls and the
 * upgrade, must reach it. That is what sticky-sessions in front of it guarantees.
 */
export async function startSocketIoServer(id: string, port = 0, host = '127.0.0.1'): Promise<ChatServer> {
  const http = createServer((req, res) => {
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'x-backend': id });
      res.end(PAGE);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  const io = new Server(http);
  io.on('connection', (socket) => {
    socket.on('echo', (payload: unknown, ack?: (reply: EchoAck) => void) => {
      ack?.({ server: id, transport: socket.conn.transport.name, payload });
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  const bound = (http.address() as AddressInfo).port;
  return {
    id,
    port: bound,
    url: `http://${host}:${bound}`,
    io,
    close: () => new Promise<void>((resolve) => io.close(() => resolve())),
  };
}
