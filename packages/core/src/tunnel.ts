import type { Socket } from 'node:net';
import type { Connection } from './context.js';
import type { CloseReason } from './hooks.js';

/** Receives the end of a tunnel exactly once. */
export interface TunnelOwner {
  tunnelClosed(tunnel: Tunnel, reason: CloseReason, error: Error | undefined): void;
}

const CLIENT_ENDED = 1;
const BACKEND_ENDED = 2;
const CLIENT_CLOSED = 4;
const BACKEND_CLOSED = 8;

const kTunnel = Symbol('wslb.tunnel');

type TunnelSocket = Socket & { [kTunnel]?: Tunnel };

/*
 * The raw pipe between a client and a backend after the handshake. This is the hot path: the
 * listeners below are shared module functions (no closures per tunnel), they allocate nothing,
 * log nothing and call no hooks per chunk. Backpressure: a write that returns false pauses the
 * source until the destination drains.
 */
function peerOf(tunnel: Tunnel, socket: Socket): Socket {
  return socket === tunnel.client ? tunnel.backend : tunnel.client;
}

function onData(this: TunnelSocket, chunk: Buffer): void {
  const tunnel = this[kTunnel]!;
  if (!peerOf(tunnel, this).write(chunk)) this.pause();
}

function onDrain(this: TunnelSocket): void {
  const tunnel = this[kTunnel]!;
  const source = peerOf(tunnel, this);
  if (!source.destroyed) source.resume();
}

function onEnd(this: TunnelSocket): void {
  const tunnel = this[kTunnel]!;
  tunnel.state |= this === tunnel.client ? CLIENT_ENDED : BACKEND_ENDED;
  // Half-close: pass the FIN on and keep the other direction flowing. A peer whose writable side
  // already ended (a socket without allowHalfOpen ends it itself) is left alone: end() again
  // would build an ERR_STREAM_ALREADY_FINISHED error, stack trace included, per tunnel.
  const peer = peerOf(tunnel, this);
  if (!peer.writableEnded) peer.end();
  if ((tunnel.state & (CLIENT_ENDED | BACKEND_ENDED)) !== (CLIENT_ENDED | BACKEND_ENDED))
    tunnel.armHalfClose();
}

function onError(this: TunnelSocket, err: Error): void {
  const tunnel = this[kTunnel]!;
  tunnel.finish(this === tunnel.client ? 'client-error' : 'backend-error', err);
}

function onClose(this: TunnelSocket, hadError: boolean): void {
  const tunnel = this[kTunnel]!;
  const isClient = this === tunnel.client;
  const ended = tunnel.state & (isClient ? CLIENT_ENDED : BACKEND_ENDED);
  if (hadError || !ended) {
    // An abrupt close (reset, destroy) of one side ends the whole tunnel at once.
    tunnel.finish(isClient ? 'client-closed' : 'backend-closed', undefined);
    return;
  }
  // A clean close after both directions ended: the peer is flushing its last bytes and closes next.
  tunnel.state |= isClient ? CLIENT_CLOSED : BACKEND_CLOSED;
  if ((tunnel.state & (CLIENT_CLOSED | BACKEND_CLOSED)) === (CLIENT_CLOSED | BACKEND_CLOSED)) {
    tunnel.finish(isClient ? 'backend-closed' : 'client-closed', undefined);
  }
}

function onIdle(this: TunnelSocket): void {
  this[kTunnel]!.finish('idle-timeout', undefined);
}

function onHalfCloseTimeout(this: Tunnel): void {
  this.finish('half-close-timeout', undefined);
}

export class Tunnel {
  readonly client: Socket;
  readonly backend: Socket;
  readonly ctx: Connection;
  readonly owner: TunnelOwner;
  state = 0;
  closed = false;
  halfCloseMs: number;
  #timer: NodeJS.Timeout | undefined = undefined;

  constructor(
    client: Socket,
    backend: Socket,
    ctx: Connection,
    owner: TunnelOwner,
    idleMs: number,
    halfCloseMs: number,
  ) {
    this.client = client;
    this.backend = backend;
    this.ctx = ctx;
    this.owner = owner;
    this.halfCloseMs = halfCloseMs;
    (client as TunnelSocket)[kTunnel] = this;
    (backend as TunnelSocket)[kTunnel] = this;
    for (const socket of [client, backend]) {
      socket.on('data', onData);
      socket.on('drain', onDrain);
      socket.on('end', onEnd);
      socket.on('error', onError);
      socket.on('close', onClose);
    }
    if (idleMs > 0) {
      // Every byte either way is read or written on the client socket, so one timer covers both.
      client.setTimeout(idleMs);
      client.on('timeout', onIdle);
    }
  }

  /** Starts the flow once the listeners are in place (the sockets were paused). */
  start(): void {
    if (this.client.destroyed || this.backend.destroyed) {
      this.finish(this.client.destroyed ? 'client-closed' : 'backend-closed', undefined);
      return;
    }
    // A FIN read during the handshake emitted 'end' before these listeners existed: pass it on now.
    if (this.client.readableEnded) onEnd.call(this.client);
    if (this.backend.readableEnded) onEnd.call(this.backend);
    this.client.resume();
    this.backend.resume();
  }

  armHalfClose(): void {
    if (this.#timer || this.closed || this.halfCloseMs <= 0) return;
    this.#timer = setTimeout(onHalfCloseTimeout.bind(this), this.halfCloseMs);
  }

  /** Destroys both sockets once and reports to the owner once. */
  finish(reason: CloseReason, error: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.client.destroy();
    this.backend.destroy();
    this.owner.tunnelClosed(this, reason, error);
  }
}
