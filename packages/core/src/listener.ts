import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { Duplex } from 'node:stream';
import {
  createServer as createTlsServer,
  type SecureContextOptions,
  type Server as TlsServer,
} from 'node:tls';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { isLingering, writeAnswer } from './answer.js';
import type { ListenConfig } from './config.js';
import type { Engine } from './engine.js';
import { WslbError } from './errors.js';
import { handleRequest } from './http-forward.js';
import { handleUpgrade } from './ws-upgrade.js';
import { peerOf, readProxyHeader, setProxiedAddress } from './proxy-protocol.js';
import { Connection } from './context.js';
import { clientAddressOf, normalizeAddress } from './forwarded.js';
import { handleTcpConnection } from './tcp-forward.js';

const kRequestTimer = Symbol('wslb.requestTimer');
const kInFlight = Symbol('wslb.inFlight');
const kAfterInFlight = Symbol('wslb.afterInFlight');
const kReadAtArm = Symbol('wslb.readAtArm');
type TimedSocket = Socket & {
  [kRequestTimer]?: NodeJS.Timeout | undefined;
  /** bytesRead when the header-read timer was armed: more since then is a partial request. */
  [kReadAtArm]?: number;
  /** Requests on this connection whose response is not finished (pipelining). */
  [kInFlight]?: number;
  /** What to do with the socket once those are finished (an upgrade, or a 400 to write). */
  [kAfterInFlight]?: (() => void) | undefined;
};

/**
 * Runs `next` once every earlier pipelined response went out, so that the raw bytes it writes
 * (a 101, a 400) never land before or inside a response to an earlier request.
 */
function afterInFlight(socket: TimedSocket, next: () => void): void {
  if ((socket[kInFlight] ?? 0) > 0) socket[kAfterInFlight] = next;
  else next();
}

function ignoreError(): void {}

function clearRequestTimer(socket: TimedSocket): void {
  const timer = socket[kRequestTimer];
  if (timer) {
    clearTimeout(timer);
    socket[kRequestTimer] = undefined;
  }
}

/** A shared listener rather than a closure per socket: idle tunnels keep their client socket. */
function onSocketClose(this: TimedSocket): void {
  clearRequestTimer(this);
}

/** Arms wslb's own header-read timer (slowloris); Node's request timeouts are off. */
function armRequestTimer(socket: TimedSocket, ms: number, onTimeout: (socket: TimedSocket) => void): void {
  clearRequestTimer(socket);
  if (ms > 0 && !socket.destroyed) {
    const timer = setTimeout(onTimeout, ms, socket);
    timer.unref();
    socket[kRequestTimer] = timer;
    socket[kReadAtArm] = socket.bytesRead;
  }
}

function clientErrorStatus(err: NodeJS.ErrnoException): WslbError {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new WslbError('WSLB_ERR_HEADERS_TOO_LARGE');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new WslbError('WSLB_ERR_REQUEST_TIMEOUT');
    default:
      return new WslbError('WSLB_ERR_BAD_REQUEST', `Bad request: ${err.code ?? 'parse error'}`);
  }
}

export interface Listener {
  readonly config: ListenConfig;
  /** What listens on the port: the HTTP(S) server, or a TCP/TLS server in mode "tcp" or behind PROXY protocol. */
  readonly server: NetServer;
  readonly secure: boolean;
  /** The port it got (the configured one, or a free one for port 0). */
  boundPort: number;
  /** Re-reads certificate files (reload) without touching open connections. */
  reloadTls(): void;
}

function readTls(config: ListenConfig, baseDir: string): SecureContextOptions | undefined {
  const tls = config.tls;
  if (!tls) return undefined;
  const read = (file: string): Buffer => readFileSync(isAbsolute(file) ? file : join(baseDir, file));
  return {
    cert: read(tls.cert),
    key: read(tls.key),
    ca: tls.ca ? read(tls.ca) : undefined,
    passphrase: tls.passphrase,
  };
}

/**
 * A TCP front that reads the PROXY protocol header, remembers the announced client address, then
 * hands the connection to `target` (the HTTP or TLS server) as if it had accepted it.
 */
function proxyProtocolFront(
  engine: Engine,
  target: NetServer,
  viaStream: boolean,
  resume: boolean,
): NetServer {
  // Half-open like the servers behind it (http.Server's sockets are too).
  return createNetServer({ pauseOnConnect: true, noDelay: true, allowHalfOpen: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    readProxyHeader(socket, engine.settings.timeouts.request).then(
      (header) => {
        let announced = header;
        // The announced address counts only from a trusted front (trustedProxies), like
        // X-Forwarded-For; from anyone else the header is read and its address ignored.
        if (announced && !engine.settings.trusted.has(normalizeAddress(socket.remoteAddress))) {
          engine.log.debug(
            { remote: socket.remoteAddress, announced: announced.sourceAddress },
            'PROXY header from a peer not in trustedProxies: its address is ignored',
          );
          announced = undefined;
        }
        if (announced) setProxiedAddress(socket, announced);
        if (viaStream) {
          // TLS would read the TCP handle directly and skip bytes already buffered here.
          const stream = streamOf(socket);
          if (announced) setProxiedAddress(stream as unknown as Socket, announced);
          target.emit('connection', stream);
        } else {
          // Let the HTTP parser read through the stream, which holds bytes after the header.
          (socket as Socket & { _handle?: { _consumed?: boolean } })._handle!._consumed = true;
          target.emit('connection', socket);
          // The HTTP server reads at once; mode tcp reads only once its backend is connected.
          if (resume) socket.resume();
        }
      },
      (err: Error) => {
        engine.log.debug({ err: err.message, remote: socket.remoteAddress }, 'PROXY protocol header refused');
        socket.destroy();
      },
    );
  });
}

/** A stream over a socket, for servers that would otherwise read the socket's handle directly. */
function streamOf(socket: Socket): Duplex {
  const stream = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      socket.write(chunk, callback);
    },
    final(callback) {
      socket.end(callback);
    },
    destroy(err, callback) {
      socket.destroy(err ?? undefined);
      callback(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on('end', () => stream.push(null));
  socket.on('close', () => stream.destroy());
  Object.defineProperties(stream, {
    remoteAddress: { get: () => socket.remoteAddress },
    remotePort: { get: () => socket.remotePort },
    localAddress: { get: () => socket.localAddress },
    localPort: { get: () => socket.localPort },
  });
  return stream;
}

/** An HTTP(S) listener wired to the upgrade and request paths, or a TCP one in mode "tcp". Not yet listening. */
export function createListener(
  engine: Engine,
  config: ListenConfig,
  baseDir: string,
  mode: 'http' | 'tcp' = 'http',
): Listener {
  const tlsOptions = readTls(config, baseDir);
  const secure = tlsOptions !== undefined;
  const inner = mode === 'tcp' ? createTcpServer(engine, tlsOptions) : createWebServer(engine, tlsOptions);
  const server = config.proxyProtocol ? proxyProtocolFront(engine, inner, secure, mode === 'http') : inner;
  if (config.proxyProtocol) {
    // The front owns the port; the inner server only receives connections, so closing the front
    // must also close the inner one (for its idle/all-connection bookkeeping).
    server.on('close', () => inner.close());
    Object.defineProperty(server, 'inner', { value: inner });
  }
  return {
    config,
    server,
    secure,
    boundPort: config.port,
    reloadTls: () => {
      const fresh = readTls(config, baseDir);
      if (fresh && 'setSecureContext' in inner) (inner as TlsServer).setSecureContext(fresh);
    },
  };
}

/** The HTTP server of a listener (the inner one behind a PROXY protocol front). */
export function httpServerOf(listener: Listener): Server | undefined {
  const server = (listener.server as NetServer & { inner?: NetServer }).inner ?? listener.server;
  // https.Server is a tls.Server with the HTTP machinery mixed in, not an http.Server subclass.
  return 'closeIdleConnections' in server ? (server as Server) : undefined;
}

function createTcpServer(engine: Engine, tlsOptions: SecureContextOptions | undefined): NetServer {
  const onConnection = (socket: Socket): void => {
    handleTcpConnection(engine, socket, tlsOptions !== undefined).catch((err: unknown) => {
      engine.log.error({ err }, 'tcp handler failed');
      socket.destroy();
    });
  };
  // Half-close: a client's FIN is passed on while the backend's answer keeps flowing back.
  if (!tlsOptions) {
    return createNetServer({ pauseOnConnect: true, noDelay: true, allowHalfOpen: true }, onConnection);
  }
  const server = createTlsServer({ ...tlsOptions, allowHalfOpen: true }, onConnection);
  server.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
  return server;
}

function createWebServer(engine: Engine, tlsOptions: SecureContextOptions | undefined): Server {
  const secure = tlsOptions !== undefined;
  const serverOptions = {
    maxHeaderSize: engine.settings.limits.headerSize,
    requestTimeout: 0,
    headersTimeout: 0,
    keepAliveTimeout: 5000,
    // Checked by wslb instead, so that the 400 gets its access line like every other refusal.
    requireHostHeader: false,
    noDelay: true,
    // Node's periodic check would write 408s of its own; wslb's timers do that job.
    connectionsCheckingInterval: 2 ** 31 - 1,
  };
  const server: Server = tlsOptions
    ? (createHttpsServer({ ...serverOptions, ...tlsOptions }) as unknown as Server)
    : createHttpServer(serverOptions);
  /*
   * A request refused before it could be parsed still gets its access line and close taps, as
   * nginx logs its 400s and 408s; a connection that never sent a byte is closed silently.
   */
  /**
   * Answers a request the core refuses on the listener itself (unparsable, too slow, CONNECT),
   * with its close taps and access line; `req` when its head could be parsed.
   */
  const refuseEarly = (socket: Socket, error: WslbError, req?: IncomingMessage): void => {
    const { address, port } = peerOf(socket);
    const ctx = new Connection(
      engine.log,
      'http',
      address,
      port,
      req ? clientAddressOf(address, req.headers, engine.settings.trusted) : address,
      secure,
      req ? { method: req.method ?? '', url: req.url ?? '', headers: req.headers } : undefined,
    );
    engine.reportError(ctx, error);
    writeAnswer(socket, error.status, error.message);
    // Still in this tick, so the close taps run before the client can read the answer.
    engine.refuse(ctx, error, socket.bytesRead, socket.bytesWritten);
  };
  const onRequestTimeout = (socket: TimedSocket): void => {
    socket[kRequestTimer] = undefined;
    const err = new WslbError('WSLB_ERR_REQUEST_TIMEOUT');
    // A connection that never sent a byte is no request: closed without an access line.
    if (socket.bytesRead > (socket[kReadAtArm] ?? 0)) refuseEarly(socket, err);
    else writeAnswer(socket, err.status, err.message);
  };
  const connectionEvent = secure ? 'secureConnection' : 'connection';
  server.on(connectionEvent, (socket: TimedSocket) => {
    armRequestTimer(socket, engine.settings.timeouts.request, onRequestTimeout);
    socket.on('close', onSocketClose);
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as TimedSocket;
    clearRequestTimer(socket);
    socket[kInFlight] = (socket[kInFlight] ?? 0) + 1;
    res.once('close', () => {
      const left = (socket[kInFlight] ?? 1) - 1;
      socket[kInFlight] = left;
      if (left > 0 || socket.destroyed) return;
      const next = socket[kAfterInFlight];
      socket[kAfterInFlight] = undefined;
      if (next) next();
      // The next request on a keep-alive connection gets the same header-read deadline.
      else armRequestTimer(socket, engine.settings.timeouts.request, onRequestTimeout);
    });
    handleRequest(engine, req, res, secure).catch((err: unknown) => {
      engine.log.error({ err }, 'request handler failed');
      res.destroy();
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const timed = socket as TimedSocket;
    clearRequestTimer(timed);
    // No request timer can be armed on it again: an idle tunnel keeps one listener less.
    socket.off('close', onSocketClose);
    const start = (): void => {
      handleUpgrade(engine, req, socket, head, secure).catch((err: unknown) => {
        engine.log.error({ err }, 'upgrade handler failed');
        socket.destroy();
      });
    };
    if ((timed[kInFlight] ?? 0) === 0) {
      start();
      return;
    }
    // Node removed its error listener at the upgrade: a reset while this waits must stay handled.
    socket.on('error', ignoreError);
    timed[kAfterInFlight] = () => {
      socket.off('error', ignoreError);
      start();
    };
  });
  // A forward-proxy request: answered 405 as nginx does, never tunneled.
  server.on('connect', (req: IncomingMessage, socket: TimedSocket) => {
    clearRequestTimer(socket);
    socket.on('error', ignoreError);
    const refused = new WslbError('WSLB_ERR_METHOD_NOT_ALLOWED');
    afterInFlight(socket, () => refuseEarly(socket, refused, req));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const timed = socket as TimedSocket;
    clearRequestTimer(timed);
    // Answered already: the failed parser raises this again for each chunk read while it closes.
    if (isLingering(socket)) return;
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    // The parser stays failed: later bytes raise this again while the answer waits its turn.
    if (timed[kAfterInFlight]) return;
    const answer = clientErrorStatus(err);
    afterInFlight(timed, () => {
      refuseEarly(socket, answer);
    });
  });
  if (secure) {
    server.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
  }
  return server;
}
