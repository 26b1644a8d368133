import type { Socket } from 'node:net';
import type { Connection } from './context.js';
import type { CloseReason } from './hooks.js';
import {
  CLOSE_GOING_AWAY_TO_CLIENT,
  FRAME_BOUNDARY,
  advanceFrames,
  closeGoingAwayToServer,
} from './ws-frames.js';

/** Receives the end of a tunnel exactly once. */
export interface TunnelOwner {
  tunnelClosed(tunnel: Tunnel, reason: CloseReason, error: Error | undefined): void;
}

const CLIENT_ENDED = 1;
const BACKEND_ENDED = 2;
const CLIENT_CLOSED = 4;
const BACKEND_CLOSED = 8;
/** Which side sent the first WebSocket close frame (seen when it starts a chunk): who ended it. */
const CLIENT_CLOSE_FRAME = 16;
const BACKEND_CLOSE_FRAME = 32;
const OPCODE_CLOSE = 0x8;

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
  // Frame headers are followed (no copy, no allocation) so that the proxy can close on a boundary.
  if (tunnel.frames) {
    const fromClient = this === tunnel.client;
    const before = fromClient ? tunnel.toBackend : tunnel.toClient;
    if (
      before === FRAME_BOUNDARY &&
      (chunk[0]! & 0x0f) === OPCODE_CLOSE &&
      (tunnel.state & (CLIENT_CLOSE_FRAME | BACKEND_CLOSE_FRAME)) === 0
    ) {
      tunnel.state |= fromClient ? CLIENT_CLOSE_FRAME : BACKEND_CLOSE_FRAME;
    }
    if (fromClient) tunnel.toBackend = advanceFrames(before, chunk);
    else tunnel.toClient = advanceFrames(before, chunk);
  }
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
  if (tunnel.closed) {
    tunnel.socketClosed();
    return;
  }
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
    // A WebSocket close handshake names who ended it; the server closes TCP first either way.
    const state = tunnel.state;
    const reason =
      state & CLIENT_CLOSE_FRAME
        ? 'client-closed'
        : state & BACKEND_CLOSE_FRAME
          ? 'backend-closed'
          : isClient
            ? 'backend-closed'
            : 'client-closed';
    tunnel.finish(reason, undefined);
  }
}

function onIdle(this: TunnelSocket): void {
  this[kTunnel]!.close('idle-timeout');
}

/** How long a tunnel the proxy closes gets to flush its close frames before it is cut. */
const CLOSE_GRACE_MS = 1000;

/** Ends a socket after what it still has to write and `last`; what it reads from now on is dropped. */
function endWith(socket: Socket, last: Buffer | undefined): void {
  if (socket.destroyed) return;
  socket.off('data', onData);
  socket.off('drain', onDrain);
  // Read and dropped, so that unread bytes never turn the close into a reset.
  socket.resume();
  if (socket.writableEnded) return;
  if (last) socket.end(last);
  else socket.end();
}

function destroyBoth(tunnel: Tunnel): void {
  tunnel.client.destroy();
  tunnel.backend.destroy();
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
  /** Whether the bytes are WebSocket frames (mode http), followed to close between frames. */
  frames: boolean;
  /** Where the client-to-backend stream stands between frames (see ws-frames). */
  toBackend = FRAME_BOUNDARY;
  /** Where the backend-to-client stream stands between frames. */
  toClient = FRAME_BOUNDARY;
  #timer: NodeJS.Timeout | undefined = undefined;
  #socketsClosed: (() => void) | undefined = undefined;
  #whenClosed: Promise<void> | undefined = undefined;

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
    this.frames = ctx.kind === 'ws';
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

  /** Frame bytes that went through before the tunnel took over (the upgrade's head, after the 101). */
  sentBefore(toBackend: Buffer, toClient: Buffer): void {
    if (!this.frames) return;
    if (toBackend.length > 0) this.toBackend = advanceFrames(this.toBackend, toBackend);
    if (toClient.length > 0) this.toClient = advanceFrames(this.toClient, toClient);
  }

  /**
   * Ends a tunnel the proxy chose to end (drain deadline, removed backend, idle timeout): each
   * WebSocket direction that stands between frames gets a close frame 1001 (going away), then
   * both sides get a FIN after what was already forwarded. The sockets are destroyed once both
   * peers closed, or after a second.
   */
  close(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.client.setTimeout(0);
    const frames = this.frames;
    endWith(this.client, frames && this.toClient === FRAME_BOUNDARY ? CLOSE_GOING_AWAY_TO_CLIENT : undefined);
    endWith(this.backend, frames && this.toBackend === FRAME_BOUNDARY ? closeGoingAwayToServer() : undefined);
    this.#timer = setTimeout(destroyBoth, CLOSE_GRACE_MS, this);
    this.#timer.unref();
    this.socketClosed();
    this.owner.tunnelClosed(this, reason, undefined);
  }

  /** After `close()`: resolves once both sockets are closed (by their peers or the grace timer). */
  whenSocketsClosed(): Promise<void> {
    if (this.#bothClosed()) return Promise.resolve();
    return (this.#whenClosed ??= new Promise((resolve) => (this.#socketsClosed = resolve)));
  }

  /** A socket of a tunnel already closed went away. */
  socketClosed(): void {
    if (!this.#bothClosed()) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#socketsClosed?.();
    this.#socketsClosed = undefined;
  }

  #bothClosed(): boolean {
    return this.client.closed && this.backend.closed;
  }

  /**
   * Ends a tunnel that failed before any byte went through it (an open tap threw): the backend is
   * cut, the client gets `last` (a close frame) then its FIN, and the owner the fault itself.
   */
  fail(error: Error, last?: Buffer): void {
    if (this.closed) return;
    this.closed = true;
    this.backend.destroy();
    endWith(this.client, last);
    this.#timer = setTimeout(destroyBoth, CLOSE_GRACE_MS, this);
    this.#timer.unref();
    this.socketClosed();
    this.owner.tunnelClosed(this, 'error', error);
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
