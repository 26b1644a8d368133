import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { closeAfterAnswer, responseHead, writeAnswer } from './answer.js';
import { Connection } from './context.js';
import type { Engine } from './engine.js';
import { WslbError, publicMessage, toWslbError } from './errors.js';
import { clientAddressOf } from './forwarded.js';
import { hostError } from './request-checks.js';
import { peerOf } from './proxy-protocol.js';
import type { HeaderMap, UpstreamResponse } from './hooks.js';
import { BodyFramer, readResponseHead } from './response-head.js';
import { buildUpstreamRequest, upgradeRequestHead } from './upstream-request.js';

const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;
/** A WebSocket close frame, server to client (unmasked), code 1011. */
const CLOSE_1011 = Buffer.from([0x88, 0x02, 0x03, 0xf3]);

/** Guard clauses of an upgrade request, each with its own status (SPEC section 2). */
function checkUpgrade(req: IncomingMessage): WslbError | undefined {
  const missingHost = hostError(req);
  if (missingHost) return missingHost;
  const upgrade = req.headers.upgrade;
  if (typeof upgrade !== 'string' || upgrade.toLowerCase() !== 'websocket') {
    return new WslbError('WSLB_ERR_UNSUPPORTED_UPGRADE');
  }
  if (req.method !== 'GET') return new WslbError('WSLB_ERR_BAD_METHOD');
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !WEBSOCKET_KEY.test(key.trim()))
    return new WslbError('WSLB_ERR_BAD_WEBSOCKET_KEY');
  const version = req.headers['sec-websocket-version'];
  // RFC 6455 speaks version 13 only (8 was a draft's), and the 426 says so.
  if (version !== '13') {
    return new WslbError('WSLB_ERR_BAD_WEBSOCKET_VERSION', undefined, {
      headers: { 'sec-websocket-version': '13' },
    });
  }
  return undefined;
}

function ignoreError(): void {}

/**
 * The upgrade path: checks, admission, connect taps, select + dial with retries, handshake taps,
 * the backend's answer (101 -> response taps -> tunnel; anything else relayed, then both closed).
 */
export async function handleUpgrade(
  engine: Engine,
  req: IncomingMessage,
  client: Socket,
  head: Buffer,
  secure: boolean,
) {
  // Attached first, removed only when the tunnel takes over the socket.
  client.on('error', ignoreError);
  const { address: peer, port: peerPort } = peerOf(client);
  const trusted = engine.settings.trusted;
  const ctx = new Connection(
    engine.log,
    'ws',
    peer,
    peerPort,
    clientAddressOf(peer, req.headers, trusted),
    secure,
    { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers },
  );
  const refused = checkUpgrade(req) ?? engine.admit(ctx);
  if (refused) {
    engine.reportError(ctx, refused);
    writeAnswer(client, refused.status, publicMessage(refused), refused.headers);
    engine.refuse(ctx, refused, client.bytesRead, client.bytesWritten);
    return;
  }

  let backendSocket: Socket | undefined;
  let clientGone = false;
  const onClientGone = (): void => {
    clientGone = true;
    backendSocket?.destroy();
  };
  client.once('close', onClientGone);

  let status = 0;
  try {
    const rejected = await engine.runConnect(ctx);
    if (rejected) throw rejected;
    if (clientGone) throw new WslbError('WSLB_ERR_BAD_REQUEST', 'client went away');

    const { socket, answer } = await engine.withBackend(
      ctx,
      async (backend) => {
        const socket = await engine.dial(backend, ctx, client);
        backendSocket = socket;
        socket.on('error', ignoreError);
        if (clientGone) throw new WslbError('WSLB_ERR_BAD_REQUEST', 'client went away');
        const upstream = buildUpstreamRequest(req, backend, peer, trusted.has(peer), secure);
        if (engine.hooks.handshake.isUsed()) {
          await engine.runHook('handshake', () => engine.hooks.handshake.promise(ctx, upstream));
        }
        socket.write(upgradeRequestHead(upstream));
        if (head.length > 0) socket.write(head);
        const answer = await readResponseHead(
          socket,
          engine.settings.limits.headerSize,
          engine.settings.timeouts.handshake,
        ).catch((err: WslbError) => {
          socket.destroy();
          // Closed without a byte of answer (nginx's proxy_next_upstream error): the next
          // backend may take the upgrade; nothing reached the client yet.
          if (err.code === 'WSLB_ERR_BACKEND_CLOSED') err.retryable = true;
          throw err;
        });
        return { socket, answer };
      },
      () => clientGone,
    );
    if (clientGone) throw new WslbError('WSLB_ERR_BAD_REQUEST', 'client went away');

    const response: UpstreamResponse = {
      status: answer.status,
      statusMessage: answer.statusMessage,
      headers: answer.headers,
    };
    if (engine.hooks.response.isUsed()) {
      await engine.runHook('response', () => engine.hooks.response.promise(ctx, response));
    }
    if (clientGone) throw new WslbError('WSLB_ERR_BAD_REQUEST', 'client went away');

    if (answer.status !== 101) {
      status = response.status;
      relayRefusal(engine, ctx, client, socket, response, answer.rest);
      client.off('close', onClientGone);
      return;
    }

    client.off('close', onClientGone);
    client.off('error', ignoreError);
    socket.off('error', ignoreError);
    const tunnel = engine.openTunnel(client, socket, ctx);
    client.write(responseHead(101, response.statusMessage || 'Switching Protocols', response.headers));
    const openError = engine.openError(ctx);
    if (openError) {
      // Nothing of the backend's frames went out yet, so a close frame lands on a boundary.
      tunnel.fail(openError, CLOSE_1011);
      return;
    }
    if (answer.rest.length > 0) client.write(answer.rest);
    tunnel.sentBefore(head, answer.rest);
    ctx.releaseRequestHeaders();
    tunnel.start();
  } catch (err) {
    client.off('close', onClientGone);
    backendSocket?.destroy();
    const error = toWslbError(err);
    status = clientGone ? 0 : error.status;
    const reason = clientGone ? 'client-closed' : reasonOf(error);
    if (!clientGone) {
      engine.reportError(ctx, error);
      writeAnswer(client, error.status, publicMessage(error), error.headers);
    } else {
      client.destroy();
    }
    engine.finish(ctx, reason, status, clientGone ? undefined : error, client.bytesRead, client.bytesWritten);
  }
}

function reasonOf(error: WslbError) {
  switch (error.code) {
    case 'WSLB_ERR_NO_BACKEND':
      return 'no-backend' as const;
    case 'WSLB_ERR_BACKEND_CONNECT':
    case 'WSLB_ERR_BACKEND_CLOSED':
    case 'WSLB_ERR_BACKEND_BAD_RESPONSE':
    case 'WSLB_ERR_BACKEND_HEADERS_TOO_LARGE':
      return 'backend-failed' as const;
    case 'WSLB_ERR_HANDSHAKE_TIMEOUT':
    case 'WSLB_ERR_RESPONSE_TIMEOUT':
    case 'WSLB_ERR_TAP_TIMEOUT':
      return 'timeout' as const;
    case 'WSLB_ERR_REJECTED':
    case 'WSLB_ERR_TOO_MANY_PER_CLIENT':
    case 'WSLB_ERR_TOO_MANY_CONNECTIONS':
      return 'rejected' as const;
    case 'WSLB_ERR_SHUTTING_DOWN':
      return 'shutdown' as const;
    default:
      return 'error' as const;
  }
}

export { reasonOf };

/**
 * A backend refused the upgrade: its status, headers and body go to the client, then both
 * sockets close. The body is framed by Content-Length or chunked encoding, else by the close.
 */
function relayRefusal(
  engine: Engine,
  ctx: Connection,
  client: Socket,
  backend: Socket,
  response: UpstreamResponse,
  rest: Buffer,
): void {
  let framer: BodyFramer;
  try {
    framer = new BodyFramer(response.status, response.headers);
  } catch {
    framer = new BodyFramer(response.status, {});
  }
  const headers: HeaderMap = { ...response.headers, connection: 'close' };
  delete headers['keep-alive'];
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    backend.destroy();
    engine.finish(ctx, 'completed', response.status, undefined, client.bytesRead, client.bytesWritten);
  };
  let clientEnded = false;
  const endClient = (): void => {
    if (clientEnded) return;
    clientEnded = true;
    backend.off('data', onData);
    closeAfterAnswer(client);
    finish();
  };
  const write = (chunk: Buffer): boolean => {
    if (chunk.length === 0) return true;
    let n: number;
    try {
      n = framer.consume(chunk);
    } catch {
      client.destroy();
      finish();
      return false;
    }
    if (n > 0 && !client.write(n === chunk.length ? chunk : chunk.subarray(0, n))) backend.pause();
    if (framer.done) {
      endClient();
      return false;
    }
    return true;
  };
  const onData = (chunk: Buffer): void => {
    write(chunk);
  };
  client.on('close', () => {
    backend.destroy();
    finish();
  });
  client.on('drain', () => backend.resume());
  backend.on('end', endClient);
  backend.on('close', endClient);
  client.write(responseHead(response.status, response.statusMessage, headers));
  if (framer.done || !write(rest)) {
    if (framer.done) endClient();
    return;
  }
  backend.on('data', onData);
  backend.resume();
}
