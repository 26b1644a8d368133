import { readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { writeAnswer } from './answer.js';
import type { ListenConfig } from './config.js';
import type { Engine } from './engine.js';
import { WslbError } from './errors.js';
import { handleRequest } from './http-forward.js';
import { handleUpgrade } from './ws-upgrade.js';

const kRequestTimer = Symbol('wslb.requestTimer');
const kInFlight = Symbol('wslb.inFlight');
const kAfterInFlight = Symbol('wslb.afterInFlight');
type TimedSocket = Socket & {
  [kRequestTimer]?: NodeJS.Timeout | undefined;
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

function onRequestTimeout(this: TimedSocket): void {
  this[kRequestTimer] = undefined;
  const err = new WslbError('WSLB_ERR_REQUEST_TIMEOUT');
  writeAnswer(this, err.status, err.message);
}

/** Arms wslb's own header-read timer (slowloris); Node's request timeouts are off. */
function armRequestTimer(socket: TimedSocket, ms: number): void {
  clearRequestTimer(socket);
  if (ms > 0 && !socket.destroyed) {
    const timer = setTimeout(onRequestTimeout.bind(socket), ms);
    timer.unref();
    socket[kRequestTimer] = timer;
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
  readonly server: Server;
  readonly secure: boolean;
}

/** An HTTP(S) listener wired to the upgrade and request paths. Not yet listening. */
export function createListener(engine: Engine, config: ListenConfig, baseDir: string): Listener {
  const secure = config.tls !== undefined;
  const serverOptions = {
    maxHeaderSize: engine.settings.limits.headerSize,
    requestTimeout: 0,
    headersTimeout: 0,
    keepAliveTimeout: 5000,
    noDelay: true,
    // Node's periodic check would write 408s of its own; wslb's timers do that job.
    connectionsCheckingInterval: 2 ** 31 - 1,
  };
  let server: Server;
  if (config.tls) {
    const read = (file: string): Buffer => readFileSync(file.startsWith('/') ? file : `${baseDir}/${file}`);
    server = createHttpsServer({
      ...serverOptions,
      cert: read(config.tls.cert),
      key: read(config.tls.key),
      ca: config.tls.ca ? read(config.tls.ca) : undefined,
      passphrase: config.tls.passphrase,
    }) as unknown as Server;
  } else {
    server = createHttpServer(serverOptions);
  }
  const connectionEvent = secure ? 'secureConnection' : 'connection';
  server.on(connectionEvent, (socket: TimedSocket) => {
    armRequestTimer(socket, engine.settings.timeouts.request);
    socket.once('close', () => clearRequestTimer(socket));
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
      else armRequestTimer(socket, engine.settings.timeouts.request);
    });
    handleRequest(engine, req, res, secure).catch((err: unknown) => {
      engine.log.error({ err }, 'request handler failed');
      res.destroy();
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const timed = socket as TimedSocket;
    clearRequestTimer(timed);
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
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const timed = socket as TimedSocket;
    clearRequestTimer(timed);
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    // The parser stays failed: later bytes raise this again while the answer waits its turn.
    if (timed[kAfterInFlight]) return;
    const answer = clientErrorStatus(err);
    engine.log.debug({ code: answer.code, parser: err.code, remote: socket.remoteAddress }, 'bad request');
    afterInFlight(timed, () => writeAnswer(socket, answer.status, answer.message));
  });
  if (secure) {
    server.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
  }
  return { config, server, secure };
}
