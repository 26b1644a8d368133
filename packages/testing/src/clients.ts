import { type IncomingMessage, request } from 'node:http';
import WebSocket, { type ClientOptions, type RawData } from 'ws';

export interface OpenedClient {
  ws: WebSocket;
  /** The `x-backend` header of the 101 (echo backends set it). */
  backend: string | undefined;
  /** Headers of the 101 as the client saw them. */
  headers: Record<string, string | string[] | undefined>;
}

/** Opens a WebSocket and resolves once it is open, with the backend that served it. */
export function openClient(
  url: string,
  options: ClientOptions = {},
  timeoutMs = 5000,
): Promise<OpenedClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    let headers: OpenedClient['headers'] = {};
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`WebSocket to ${url} did not open within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.once('upgrade', (res) => {
      headers = res.headers;
    });
    ws.once('open', () => {
      clearTimeout(timer);
      const backend = headers['x-backend'];
      resolve({ ws, backend: Array.isArray(backend) ? backend[0] : backend, headers });
    });
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      res.resume();
      ws.terminate();
      reject(Object.assign(new Error(`unexpected response ${res.statusCode}`), { status: res.statusCode }));
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Opens `count` sockets one after another; returns them with how many each backend got. */
export async function openClients(
  url: string,
  count: number,
  options?: ClientOptions,
): Promise<{ clients: OpenedClient[]; perBackend: Record<string, number> }> {
  const clients: OpenedClient[] = [];
  const perBackend: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const client = await openClient(url, options);
    clients.push(client);
    const id = client.backend ?? 'unknown';
    perBackend[id] = (perBackend[id] ?? 0) + 1;
  }
  return { clients, perBackend };
}

/** Sends one message and resolves with the next message received. */
export function roundTrip(
  ws: WebSocket,
  data: string | Buffer,
  timeoutMs = 5000,
): Promise<{ data: RawData; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.off('message', onMessage);
      reject(new Error(`no echo within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (reply: RawData, isBinary: boolean): void => {
      clearTimeout(timer);
      resolve({ data: reply, isBinary });
    };
    ws.once('message', onMessage);
    ws.send(data, { binary: typeof data !== 'string' });
  });
}

/** Resolves with the close code and reason the client receives. */
export function closed(ws: WebSocket, timeoutMs = 5000): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    if (ws.readyState === WebSocket.CLOSED) {
      resolve({ code: 1006, reason: '' });
      return;
    }
    const timer = setTimeout(() => reject(new Error(`socket not closed within ${timeoutMs} ms`)), timeoutMs);
    ws.once('close', (code, reason) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString() });
    });
  });
}

/** Closes clients and waits until each is closed. */
export async function closeAll(clients: ReadonlyArray<OpenedClient | WebSocket>): Promise<void> {
  await Promise.all(
    clients.map((c) => {
      const ws = c instanceof WebSocket ? c : c.ws;
      if (ws.readyState === WebSocket.CLOSED) return undefined;
      const done = closed(ws).catch(() => ws.terminate());
      ws.terminate();
      return done;
    }),
  );
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Reads a whole HTTP response: status, headers and the body as UTF-8. */
export function readAnswer(res: IncomingMessage): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () =>
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      }),
    );
    res.on('error', reject);
  });
}

/**
 * Sends an upgrade request with the given headers and resolves with the non-101 answer (status,
 * headers, body) - for asserting the proxy's refusals. Rejects if the upgrade succeeds.
 */
export function upgradeRequest(
  url: string,
  headers: Record<string, string>,
  timeoutMs = 5000,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const u = new URL(url.replace(/^ws/, 'http'));
    const req = request({
      host: u.hostname,
      port: u.port,
      path: `${u.pathname}${u.search}`,
      headers: { connection: 'Upgrade', upgrade: 'websocket', ...headers },
      agent: false,
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('upgrade', (_res, socket) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error('the upgrade succeeded'));
    });
    req.on('response', (res) => {
      readAnswer(res).then(
        (answer) => {
          clearTimeout(timer);
          resolve(answer);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err as Error);
        },
      );
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

/** A valid random Sec-WebSocket-Key. */
export function webSocketKey(): string {
  return Buffer.from(Array.from({ length: 16 }, () => Math.floor(Math.random() * 256))).toString('base64');
}

/** Polls `check` until it returns true (or a value), failing after `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  {
    timeoutMs = 5000,
    intervalMs = 20,
    message = 'condition',
  }: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
