import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import type { Backend } from './backend.js';

export type ConnectionKind = 'ws' | 'http' | 'tcp';

export interface RequestInfo {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

/** What every tap receives about one client connection (one request for plain HTTP). */
export interface ConnectionContext {
  readonly id: number;
  readonly kind: ConnectionKind;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The peer address, or the forwarded client address when the peer is a trusted proxy. */
  readonly clientAddress: string;
  /** Whether the client reached wslb over TLS. */
  readonly secure: boolean;
  /**
   * Request line and headers (mode http). Once a tunnel is open (after the open taps ran) its
   * headers are released so that idle tunnels do not hold them: a tap that needs a header later
   * (in close) keeps it itself, in a WeakMap keyed by the context.
   */
  readonly request: RequestInfo | undefined;
  /** The chosen backend, once selected. */
  readonly backend: Backend | undefined;
  /** When the connection was accepted (ms since epoch). */
  readonly startTime: number;
  /** A pino child logger bound to this connection, created on first use. */
  readonly log: Logger;
}

/** What `request.headers` is once a tunnel released them. */
const RELEASED_HEADERS: IncomingHttpHeaders = Object.freeze({});

let nextId = 1;

export function nextConnectionId(): number {
  const id = nextId;
  nextId = nextId === Number.MAX_SAFE_INTEGER ? 1 : nextId + 1;
  return id;
}

/** The core's context object. Plain fields and a lazy logger, so an idle tunnel holds little. */
export class Connection implements ConnectionContext {
  readonly id: number;
  readonly kind: ConnectionKind;
  readonly remoteAddress: string;
  readonly remotePort: number;
  clientAddress: string;
  readonly secure: boolean;
  request: RequestInfo | undefined;
  backend: Backend | undefined = undefined;
  readonly startTime: number;
  #root: Logger;
  #log: Logger | undefined = undefined;

  constructor(
    root: Logger,
    kind: ConnectionKind,
    remoteAddress: string,
    remotePort: number,
    clientAddress: string,
    secure: boolean,
    request: RequestInfo | undefined,
  ) {
    this.id = nextConnectionId();
    this.kind = kind;
    this.remoteAddress = remoteAddress;
    this.remotePort = remotePort;
    this.clientAddress = clientAddress;
    this.secure = secure;
    this.request = request;
    this.startTime = Date.now();
    this.#root = root;
  }

  /** Keeps method and url (close taps, access line) and lets the headers go. */
  releaseRequestHeaders(): void {
    const request = this.request;
    if (request && request.headers !== RELEASED_HEADERS) {
      this.request = { method: request.method, url: request.url, headers: RELEASED_HEADERS };
    }
  }

  get log(): Logger {
    return (this.#log ??= this.#root.child({ conn: this.id }));
  }
}
