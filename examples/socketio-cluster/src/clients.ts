import { io, type Socket } from 'socket.io-client';
import type { EchoAck } from './server.js';

export interface ClientResult {
  /** Connected, upgraded to WebSocket and every event acknowledged. */
  ok: boolean;
  /** The server that acknowledged the events. */
  server: string | undefined;
  /** What went wrong, when not ok. */
  error: string | undefined;
}

export interface ClientRun {
  results: ClientResult[];
  /** Disconnects every client. */
  close(): void;
}

/**
 * Runs `count` socket.io clients at once against `url` with the default transports and
 * `withCredentials: true` (so they keep cookies, as a browser does): each connects, waits for the
 * upgrade to WebSocket, then sends `events` acknowledged events. Reconnection is off, so a
 * session that breaks is reported instead of retried.
 */
export async function runClients(
  url: string,
  count: number,
  { events = 3, timeoutMs = 10_000 }: { events?: number; timeoutMs?: number } = {},
): Promise<ClientRun> {
  const sockets: Socket[] = [];
  const results = await Promise.all(
    Array.from({ length: count }, (_, i) => {
      const socket = io(url, {
        withCredentials: true,
        reconnection: false,
        forceNew: true,
        timeout: timeoutMs,
      });
      sockets.push(socket);
      return runOne(socket, i, events, timeoutMs);
    }),
  );
  return {
    results,
    close: () => {
      for (const s of sockets) s.disconnect();
    },
  };
}

function runOne(socket: Socket, index: number, events: number, timeoutMs: number): Promise<ClientResult> {
  return new Promise((resolve) => {
    let done = false;
    let server: string | undefined;
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ok: error === undefined, server, error });
    };
    const timer = setTimeout(() => {
      const transport = socket.io.engine?.transport?.name ?? 'none';
      finish(`not done within ${timeoutMs} ms (connected: ${socket.connected}, transport: ${transport})`);
    }, timeoutMs);
    socket.on('connect_error', (err) => finish(`connect_error: ${err.message}`));
    socket.on('disconnect', (reason) => finish(`disconnect: ${reason}`));
    socket.once('connect', () => {
      const engine = socket.io.engine;
      engine.on('upgradeError', (err: Error) => finish(`upgrade failed: ${err.message}`));
      const upgraded =
        engine.transport.name === 'websocket'
          ? Promise.resolve()
          : new Promise<void>((ok) => engine.once('upgrade', () => ok()));
      upgraded
        .then(async () => {
          for (let e = 0; e < events && !done; e++) {
            const payload = `client ${index} event ${e}`;
            const ack = (await socket.timeout(timeoutMs).emitWithAck('echo', payload)) as EchoAck;
            if (ack.payload !== payload) return finish(`wrong ack payload ${String(ack.payload)}`);
            if (ack.transport !== 'websocket') return finish(`acknowledged over ${ack.transport}`);
            if (server !== undefined && ack.server !== server) return finish('acks from two servers');
            server = ack.server;
          }
          finish();
        })
        .catch((err: Error) => finish(`ack failed: ${err.message}`));
    });
  });
}
