import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer, type AddressInfo, type Socket } from 'node:net';

/** A port nothing listens on (bound, then released). */
export async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface ClosableServer {
  port: number;
  url: string;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

function track(server: Server | ReturnType<typeof createServer>): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return sockets;
}

async function listen(
  server: Server | ReturnType<typeof createServer>,
  sockets: Set<Socket>,
): Promise<ClosableServer> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A backend that refuses every upgrade with the given status and body. */
export async function refusingBackend(
  status: number,
  body: string,
  chunked = false,
): Promise<ClosableServer> {
  const server = createHttpServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(body);
  });
  server.on('upgrade', (_req, socket: Socket) => {
    const head = chunked
      ? `HTTP/1.1 ${status} Refused\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\nx-refused-by: test\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`
      : `HTTP/1.1 ${status} Refused\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-refused-by: test\r\n\r\n${body}`;
    // Keep the connection open: the proxy must end it by the body's framing.
    socket.write(head);
    socket.on('error', () => {});
    socket.on('end', () => socket.destroy());
    socket.resume();
  });
  return listen(server, track(server));
}

/** A TCP server that accepts and never answers. */
export async function silentBackend(): Promise<ClosableServer> {
  const server = createServer((socket) => socket.on('error', () => {}));
  return listen(server, track(server));
}

/** A TCP server running `onSocket` for each connection (raw protocol tests). */
export async function rawBackend(onSocket: (socket: Socket) => void): Promise<ClosableServer> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    onSocket(socket);
  });
  return listen(server, track(server));
}
