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
type TimedSocket = Socket & { [kRequestTimer]?: NodeJS.Timeout | undefined };

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
    socket.on('close', onSocketClose);
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as TimedSocket;
    clearRequestTimer(socket);
    // The next request on a keep-alive connection gets the same header-read deadline.
    res.once('finish', () => {
      if (!socket.destroyed) armRequestTimer(socket, engine.settings.timeouts.request);
    });
    handleRequest(engine, req, res, secure).catch((err: unknown) => {
      engine.log.error({ err }, 'request handler failed');
      res.destroy();
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    clearRequestTimer(socket as TimedSocket);
    // No request timer can be armed on it again: an idle tunnel keeps one listener less.
    socket.off('close', onSocketClose);
    handleUpgrade(engine, req, socket, head, secure).catch((err: unknown) => {
      engine.log.error({ err }, 'upgrade handler failed');
      socket.destroy();
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    clearRequestTimer(socket as TimedSocket);
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const answer = clientErrorStatus(err);
    engine.log.debug({ code: answer.code, parser: err.code, remote: socket.remoteAddress }, 'bad request');
    writeAnswer(socket, answer.status, answer.message);
  });
  if (secure) {
    server.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
  }
  return { config, server, secure };
}
