import { AsyncSeriesBailHook, AsyncSeriesHook, SyncHook } from 'tapable';
import type { Backend, BackendState } from './backend.js';
import type { ConnectionContext } from './context.js';
import type { WslbError } from './errors.js';

/** Stage of select taps that override the balancer (stickiness). Lower stages run first. */
export const STAGE_OVERRIDE = -100;
/** Stage of balancing select taps. */
export const STAGE_BALANCE = 0;

/** What a connect tap returns to turn a client away before a backend is chosen. */
export interface ConnectRejection {
  status?: number;
  reason?: string;
  headers?: Record<string, string>;
}

export type HeaderValue = string | string[];
export type HeaderMap = Record<string, HeaderValue | undefined>;

/** The request that will be written to the backend; handshake taps may edit it. */
export interface UpstreamRequest {
  method: string;
  /** Path and query sent to the backend. */
  path: string;
  /** Lower-case header names. */
  headers: HeaderMap;
}

/** The backend's answer before the client sees it; response taps may edit status and headers. */
export interface UpstreamResponse {
  status: number;
  statusMessage: string;
  /** Lower-case header names; `set-cookie` is an array. */
  headers: HeaderMap;
}

export type CloseReason =
  | 'client-closed'
  | 'backend-closed'
  | 'client-error'
  | 'backend-error'
  | 'completed'
  | 'rejected'
  | 'no-backend'
  | 'backend-failed'
  | 'timeout'
  | 'idle-timeout'
  | 'half-close-timeout'
  | 'drain'
  | 'shutdown'
  | 'removed-backend'
  | 'error';

/** What the close hook receives once per connection. */
export interface CloseInfo {
  reason: CloseReason;
  /** HTTP status the client got (101 for an opened tunnel), or 0 when none was sent. */
  status: number;
  backend: Backend | undefined;
  durationMs: number;
  /** Bytes from the client to the backend. */
  bytesIn: number;
  /** Bytes from the backend to the client. */
  bytesOut: number;
  error: WslbError | undefined;
}

export interface ProxyHooks {
  readonly connect: AsyncSeriesBailHook<[ConnectionContext], ConnectRejection | undefined | void>;
  readonly select: AsyncSeriesBailHook<[ConnectionContext, readonly Backend[]], Backend | undefined | void>;
  readonly handshake: AsyncSeriesHook<[ConnectionContext, UpstreamRequest]>;
  readonly response: AsyncSeriesHook<[ConnectionContext, UpstreamResponse]>;
  readonly open: SyncHook<[ConnectionContext]>;
  readonly close: SyncHook<[ConnectionContext, CloseInfo]>;
  readonly error: SyncHook<[ConnectionContext | undefined, WslbError]>;
  readonly backendAdded: SyncHook<[Backend]>;
  readonly backendRemoved: SyncHook<[Backend]>;
  readonly backendState: SyncHook<[Backend, BackendState, string]>;
  /** A dial to a backend failed (refused, reset, timeout): passive health checks count these. */
  readonly backendFailure: SyncHook<[Backend, WslbError]>;
  /** The first attempt on a backend that succeeded after a backendFailure (passive checks reset). */
  readonly backendSuccess: SyncHook<[Backend]>;
}

export function createHooks(): ProxyHooks {
  return Object.freeze({
    connect: new AsyncSeriesBailHook<[ConnectionContext], ConnectRejection | undefined | void>(['ctx']),
    select: new AsyncSeriesBailHook<[ConnectionContext, readonly Backend[]], Backend | undefined | void>([
      'ctx',
      'candidates',
    ]),
    handshake: new AsyncSeriesHook<[ConnectionContext, UpstreamRequest]>(['ctx', 'upstreamRequest']),
    response: new AsyncSeriesHook<[ConnectionContext, UpstreamResponse]>(['ctx', 'upstreamResponse']),
    open: new SyncHook<[ConnectionContext]>(['ctx']),
    close: new SyncHook<[ConnectionContext, CloseInfo]>(['ctx', 'info']),
    error: new SyncHook<[ConnectionContext | undefined, WslbError]>(['ctx', 'err']),
    backendAdded: new SyncHook<[Backend]>(['backend']),
    backendRemoved: new SyncHook<[Backend]>(['backend']),
    backendState: new SyncHook<[Backend, BackendState, string]>(['backend', 'previous', 'reason']),
    backendFailure: new SyncHook<[Backend, WslbError]>(['backend', 'err']),
    backendSuccess: new SyncHook<[Backend]>(['backend']),
  });
}

/** A hook as plugins see it: tap methods only; calling a hook is the core's job. */
export type Tappable<H> = Pick<H, Extract<keyof H, 'tap' | 'tapAsync' | 'tapPromise' | 'isUsed'>>;

/** A set of hooks with every hook reduced to its tap methods (no `call`, `promise`, `intercept`). */
export type TapOnly<H> = { readonly [K in keyof H]: Tappable<H[K]> };

/** The proxy's hooks as a plugin's `apply` sees them. */
export type PluginHooks = TapOnly<ProxyHooks>;
