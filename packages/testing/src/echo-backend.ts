import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

/** How long `close()` gives WebSocket clients to answer its close frame. */
const CLOSE_GRACE_MS = 1000;

/** What a backend saw of one WebSocket upgrade or HTTP request. */
export interface SeenRequest {
  kind: 'ws' | 'http';
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  remotePort: number;
}

export interface EchoBackendOptions {
  /** Reported in `x-backend` headers and HTTP bodies. */
  id: string;
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Answer each WebSocket upgrade this many ms late (a slow backend). Default 0. */
  upgradeDelayMs?: number;
  /** Refuse every WebSocket upgrade with this HTTP status instead of 101. Default: accept. */
  upgradeStatus?: number;
}

/**
 * A backend that echoes WebSocket messages (text stays text, binary stays binary) and answers
 * HTTP requests with a JSON description of what it received. It names itself in an
 * `x-backend` header on the 101 and on every HTTP answer, so tests can see who served them.
 */
export class EchoBackend {
  readonly id: string;
  readonly seen: SeenRequest[] = [];
  /** Open WebSockets on this backend. */
  readonly clients = new Set<WebSocket>();
  // Replaced by restart(): a closed WebSocketServer cannot accept again.
  #server!: Server;
  #wss!: WebSocketServer;
  readonly #sockets = new Set<Socket>();
  #port = 0;
  readonly #host: string;
  readonly #wantedPort: number;
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Delay of each upgrade answer in ms; may be changed while running. */
  upgradeDelayMs: number;
  /** When set, upgrades are refused with this status; may be changed while running. */
  upgradeStatus: number | undefined;

  constructor(options: EchoBackendOptions) {
    this.id = options.id;
    this.#host = options.host ?? '127.0.0.1';
    this.#wantedPort = options.port ?? 0;
    this.upgradeDelayMs = options.upgradeDelayMs ?? 0;
    this.upgradeStatus = options.upgradeStatus;
    this.#createServers();
  }

  #createServers(): void {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.seen.push({
          kind: 'http',
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          remotePort: req.socket.remotePort ?? 0,
        });
        const body = JSON.stringify({
          backend: this.id,
          method: req.method,
          url: req.url,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        res.writeHead(200, { 'content-type': 'application/json', 'x-backend': this.id });
        res.end(body);
      });
    });
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#wss = new WebSocketServer({
      server: this.#server,
      perMessageDeflate: false,
      maxPayload: 64 * 1024 * 1024,
      verifyClient: (_info, done) => {
        const status = this.upgradeStatus;
        const answer = (): void =>
          status === undefined
            ? done(true)
            : done(false, status, `refused by ${this.id}`, { 'x-backend': this.id });
        if (this.upgradeDelayMs <= 0) {
          answer();
          return;
        }
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          answer();
        }, this.upgradeDelayMs);
        this.#timers.add(timer);
      },
    });
    // ws re-emits the http server's errors (a busy port); start() rejects with them already.
    this.#wss.on('error', () => {});
    this.#wss.on('headers', (headers) => headers.push(`x-backend: ${this.id}`));
    this.#wss.on('connection', (ws, req) => {
      this.seen.push({
        kind: 'ws',
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        remotePort: req.socket.remotePort ?? 0,
      });
      this.clients.add(ws);
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on('error', () => ws.terminate());
      ws.on('close', () => this.clients.delete(ws));
    });
  }

  async start(): Promise<this> {
    await this.#listen(this.#wantedPort);
    return this;
  }

  async #listen(port: number): Promise<void> {
    const server = this.#server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.#host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#port = (server.address() as AddressInfo).port;
  }

  get port(): number {
    return this.#port;
  }

  /** `ws://host:port` */
  get url(): string {
    return `ws://${this.#host}:${this.#port}`;
  }

  get httpUrl(): string {
    return `http://${this.#host}:${this.#port}`;
  }

  /** WebSocket upgrades this backend accepted. */
  get upgrades(): number {
    return this.seen.filter((s) => s.kind === 'ws').length;
  }

  /** Closes every open WebSocket with a close code (it reaches the clients through the proxy). */
  closeClients(code = 1000, reason = ''): void {
    for (const ws of this.clients) ws.close(code, reason);
  }

  /** Stops accepting and destroys every open socket at once, like a crashed process (1006). */
  async kill(): Promise<void> {
    await this.#shutdown(0);
  }

  /**
   * Stops accepting and closes cleanly, like a process that shuts down: each WebSocket gets a
   * close frame 1001 (going away) and up to a second to answer it; those that did not are then
   * cut off, with the other sockets (idle HTTP, upgrades not answered yet).
   */
  async close(): Promise<void> {
    await this.#shutdown(CLOSE_GRACE_MS);
  }

  async #shutdown(graceMs: number): Promise<void> {
    const server = this.#server;
    // 'close' comes once every connection is gone.
    const serverClosed = server.listening
      ? new Promise<void>((resolve) => server.close(() => resolve()))
      : undefined;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    if (graceMs > 0 && this.clients.size > 0) await this.#closeClientsWithin(graceMs);
    for (const ws of this.clients) ws.terminate();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    await serverClosed;
  }

  /** Sends every WebSocket a close frame 1001; resolves once all closed, or after `ms`. */
  async #closeClientsWithin(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const allClosed = Promise.all(
      [...this.clients].map(
        (ws) =>
          new Promise<void>((resolve) => {
            ws.once('close', () => resolve());
            ws.close(1001);
          }),
      ),
    );
    await Promise.race([allClosed, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
  }

  /**
   * Listens again on the same port, like a restarted process: after `kill()` or `close()`, or
   * while running (its sockets are dropped first, as by `kill()`). It restarts in place: the
   * same object keeps its id, port, options and `seen` list, so whoever holds it (a cluster, a
   * cleanup list) keeps working with it. Returns `this`.
   */
  async restart(): Promise<this> {
    await this.kill();
    this.#createServers();
    await this.#listen(this.#port || this.#wantedPort);
    return this;
  }
}

export async function startEchoBackend(options: EchoBackendOptions): Promise<EchoBackend> {
  return new EchoBackend(options).start();
}

/** Starts `count` echo backends named `${prefix}1`, `${prefix}2`... */
export async function startEchoBackends(count: number, prefix = 'b'): Promise<EchoBackend[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => startEchoBackend({ id: `${prefix}${i + 1}` })));
}
