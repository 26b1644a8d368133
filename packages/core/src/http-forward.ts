import {
  request as httpRequest,
  type ClientRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type Socket } from 'node:net';
import type { Backend } from './backend.js';
import { Connection } from './context.js';
import type { Engine } from './engine.js';
import { WslbError, publicMessage, toWslbError } from './errors.js';
import { clientAddressOf } from './forwarded.js';
import { hostError } from './request-checks.js';
import { peerOf } from './proxy-protocol.js';
import type { HeaderMap, UpstreamResponse } from './hooks.js';
import { buildUpstreamRequest } from './upstream-request.js';
import { reasonOf } from './ws-upgrade.js';

const HOP_BY_HOP_RESPONSE = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'trailer',
  'te',
]);

function responseHeaders(res: IncomingMessage): HeaderMap {
  const headers: HeaderMap = {};
  const named = res.headers.connection;
  const extra = named ? new Set(named.split(',').map((s) => s.trim().toLowerCase())) : undefined;
  for (const name in res.headers) {
    if (HOP_BY_HOP_RESPONSE.has(name) || extra?.has(name)) continue;
    headers[name] = res.headers[name];
  }
  return headers;
}

function sendError(res: ServerResponse, error: WslbError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${publicMessage(error)}\n`;
  res.writeHead(error.status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...error.headers,
  });
  res.end(body);
}

/**
 * The body goes to the backend framed as the client framed it, whatever the headers say by now:
 * Node sends a body of GET, DELETE, OPTIONS... unframed unless told, and a client could name
 * Content-Length in its Connection header to strip it. Either way the backend would read the body
 * as a next request on a shared keep-alive connection (request smuggling).
 */
function setBodyFraming(headers: HeaderMap, req: IncomingMessage): void {
  delete headers['content-length'];
  delete headers['transfer-encoding'];
  // Node's parser accepts Transfer-Encoding only with chunked last (and never beside Content-Length).
  if (req.headers['transfer-encoding'] !== undefined) headers['transfer-encoding'] = 'chunked';
  else if (req.headers['content-length'] !== undefined)
    headers['content-length'] = req.headers['content-length'];
}

interface Attempt {
  proxyReq: ClientRequest;
  proxyRes: IncomingMessage;
}

/**
 * Sends the request to one backend. Rejects with WSLB_ERR_BACKEND_CONNECT (retryable) only while
 * no byte of the request was written; the body is piped only once the connection is up.
 */
function attemptRequest(
  engine: Engine,
  ctx: Connection,
  req: IncomingMessage,
  backend: Backend,
  secure: boolean,
  onRequest: (proxyReq: ClientRequest) => void,
): Promise<Attempt> {
  return (async () => {
    const peer = ctx.remoteAddress;
    const upstream = buildUpstreamRequest(req, backend, peer, engine.settings.trusted.has(peer), secure);
    if (engine.hooks.handshake.isUsed()) {
      await engine.runHook('handshake', () => engine.hooks.handshake.promise(ctx, upstream));
    }
    setBodyFraming(upstream.headers, req);
    return new Promise<Attempt>((resolve, reject) => {
      const tls = backend.tls;
      const options = {
        host: backend.hostname,
        port: backend.port,
        method: upstream.method,
        path: upstream.path,
        headers: upstream.headers as Record<string, string | string[]>,
        agent: engine.agentFor(backend),
        servername: tls?.servername ?? (isIP(backend.hostname) ? undefined : backend.hostname),
        ca: tls?.ca,
        rejectUnauthorized: tls?.rejectUnauthorized ?? true,
        // The same limit as for a 101's headers, not Node's default.
        maxHeaderSize: engine.settings.limits.headerSize,
      };
      const proxyReq = backend.secure ? httpsRequest(options) : httpRequest(options);
      onRequest(proxyReq);
      let connected = false;
      let timer: NodeJS.Timeout | undefined;
      const startBody = (): void => {
        connected = true;
        if (engine.settings.timeouts.connect > 0 && timer) clearTimeout(timer);
        const responseTimeout = engine.settings.timeouts.response;
        if (responseTimeout > 0) {
          timer = setTimeout(() => {
            proxyReq.destroy(new WslbError('WSLB_ERR_RESPONSE_TIMEOUT'));
          }, responseTimeout);
        }
        req.pipe(proxyReq);
      };
      if (engine.settings.timeouts.connect > 0) {
        timer = setTimeout(() => {
          proxyReq.destroy(
            new WslbError(
              'WSLB_ERR_BACKEND_CONNECT',
              `connect to ${backend.id} timed out after ${engine.settings.timeouts.connect} ms`,
            ),
          );
        }, engine.settings.timeouts.connect);
      }
      proxyReq.on('socket', (socket) => {
        if (socket.connecting) socket.once('connect', startBody);
        else startBody();
      });
      proxyReq.on('response', (proxyRes) => {
        if (timer) clearTimeout(timer);
        resolve({ proxyReq, proxyRes });
      });
      proxyReq.on('error', (err) => {
        if (timer) clearTimeout(timer);
        if (err instanceof WslbError && err.code !== 'WSLB_ERR_BACKEND_CONNECT') return reject(err);
        const parseError = (err as NodeJS.ErrnoException).code;
        if (parseError?.startsWith('HPE_')) {
          const code =
            parseError === 'HPE_HEADER_OVERFLOW'
              ? 'WSLB_ERR_BACKEND_HEADERS_TOO_LARGE'
              : 'WSLB_ERR_BACKEND_BAD_RESPONSE';
          return reject(new WslbError(code, `backend ${backend.id}: ${err.message}`, { cause: err }));
        }
        if (!connected) {
          reject(
            err instanceof WslbError
              ? err
              : new WslbError('WSLB_ERR_BACKEND_CONNECT', `connect to ${backend.id} failed: ${err.message}`, {
                  cause: err,
                }),
          );
        } else {
          reject(
            new WslbError('WSLB_ERR_BACKEND_CLOSED', `backend ${backend.id} failed: ${err.message}`, {
              cause: err,
            }),
          );
        }
      });
    });
  })();
}

const kCountedIn = Symbol('wslb.countedIn');
const kCountedOut = Symbol('wslb.countedOut');

type CountedSocket = Socket & { [kCountedIn]?: number; [kCountedOut]?: number };

/**
 * The bytes of a keep-alive connection since the previous request ended, which are this
 * request's: its head and body in, its response out. The first read of a connection holds the head
 * and the start of the body before any request exists, so counting from the request's start
 * would miss them; pipelined bytes read early go to the request being answered, and the totals
 * of a connection always add up.
 */
function takeRequestBytes(socket: Socket): { bytesIn: number; bytesOut: number } {
  const counted = socket as CountedSocket;
  const bytesIn = socket.bytesRead - (counted[kCountedIn] ?? 0);
  const bytesOut = socket.bytesWritten - (counted[kCountedOut] ?? 0);
  counted[kCountedIn] = socket.bytesRead;
  counted[kCountedOut] = socket.bytesWritten;
  return { bytesIn, bytesOut };
}

const socketCloseCallbacks = new WeakMap<Socket, Set<() => void>>();

/**
 * Calls `fn` when the client connection closes; returns a function that cancels it. One 'close'
 * listener per connection however many pipelined requests wait on it.
 */
function whenSocketCloses(socket: Socket, fn: () => void): () => void {
  let callbacks = socketCloseCallbacks.get(socket);
  if (!callbacks) {
    const set = new Set<() => void>();
    callbacks = set;
    socketCloseCallbacks.set(socket, set);
    socket.once('close', () => {
      for (const callback of [...set]) callback();
      set.clear();
    });
  }
  callbacks.add(fn);
  const set = callbacks;
  return () => set.delete(fn);
}

/**
 * Plain HTTP: one context per request through the same hooks as a WebSocket; bodies stream both
 * ways; a retry on another backend happens only before any request byte was written.
 */
export async function handleRequest(
  engine: Engine,
  req: IncomingMessage,
  res: ServerResponse,
  secure: boolean,
) {
  const socket = req.socket;
  if (engine.shuttingDown) {
    res.setHeader('connection', 'close');
    sendError(res, new WslbError('WSLB_ERR_SHUTTING_DOWN'));
    return;
  }
  const { address: peer, port: peerPort } = peerOf(socket);
  const ctx = new Connection(
    engine.log,
    'http',
    peer,
    peerPort,
    clientAddressOf(peer, req.headers, engine.settings.trusted),
    secure,
    { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers },
  );
  const refused = hostError(req) ?? engine.admit(ctx);
  if (refused) {
    engine.reportError(ctx, refused);
    if (refused.status === 400) res.setHeader('connection', 'close');
    sendError(res, refused);
    const { bytesIn, bytesOut } = takeRequestBytes(socket);
    engine.refuse(ctx, refused, bytesIn, bytesOut);
    return;
  }
  let clientGone = false;
  let proxyReq: ClientRequest | undefined;
  let finished = false;
  const finish = (reason: Parameters<Engine['finish']>[1], error?: WslbError): void => {
    if (finished) return;
    finished = true;
    forgetSocket();
    const { bytesIn, bytesOut } = takeRequestBytes(socket);
    engine.finish(ctx, reason, res.statusCode, error, bytesIn, bytesOut);
  };
  // While an attempt is in flight the main flow owns the ending (it releases the backend);
  // once the response streams, a client close ends the request here.
  let streaming = false;
  const onClientGone = (): void => {
    // Not res.writableFinished: a response written to a socket that just failed reads as finished
    // but never emits 'finish', so only a finished request is done.
    if (finished) return;
    clientGone = true;
    proxyReq?.destroy();
    if (streaming) finish('client-closed');
  };
  res.on('close', onClientGone);
  // A response queued behind pipelined ones never emits 'close' when the connection drops.
  const forgetSocket = whenSocketCloses(socket, onClientGone);

  try {
    const rejected = await engine.runConnect(ctx);
    if (rejected) throw rejected;
    const { proxyRes } = await engine.withBackend(
      ctx,
      (backend) => attemptRequest(engine, ctx, req, backend, secure, (r) => (proxyReq = r)),
      () => clientGone,
    );
    if (clientGone) {
      proxyRes.destroy();
      finish('client-closed');
      return;
    }
    const response: UpstreamResponse = {
      status: proxyRes.statusCode ?? 502,
      statusMessage: proxyRes.statusMessage ?? '',
      headers: responseHeaders(proxyRes),
    };
    if (engine.hooks.response.isUsed()) {
      await engine.runHook('response', () => engine.hooks.response.promise(ctx, response));
    }
    if (engine.shuttingDown) response.headers.connection = 'close';
    res.writeHead(
      response.status,
      response.statusMessage || undefined,
      response.headers as Record<string, string>,
    );
    streaming = true;
    if (clientGone) {
      proxyRes.destroy();
      finish('client-closed');
      return;
    }
    proxyRes.on('error', () => res.destroy());
    res.on('finish', () => finish('completed'));
    proxyRes.pipe(res);
  } catch (err) {
    const error = toWslbError(err);
    if (clientGone) {
      finish('client-closed');
      return;
    }
    engine.reportError(ctx, error);
    streaming = true;
    res.on('finish', () => finish(reasonOf(error), error));
    sendError(res, error);
  }
}
