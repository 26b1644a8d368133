import { STATUS_CODES } from 'node:http';
/**
 * The error catalog. Every fault wslb reports carries a stable `WSLB_ERR_*` code, the HTTP status
 * the client gets when it happens before a 101, and the WebSocket close code that fits after it.
 * docs/errors.md lists the same table; a test keeps the two in sync.
 */
export interface ErrorDefinition {
  readonly status: number;
  readonly closeCode?: number;
  readonly message: string;
}

export const ERRORS = {
  // Client requests
  WSLB_ERR_BAD_REQUEST: { status: 400, message: 'Malformed request' },
  WSLB_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'Request header fields too large' },
  WSLB_ERR_REQUEST_TIMEOUT: { status: 408, message: 'Request header not received in time' },
  WSLB_ERR_UNSUPPORTED_UPGRADE: { status: 400, message: 'Only Upgrade: websocket is supported' },
  WSLB_ERR_BAD_WEBSOCKET_KEY: { status: 400, message: 'Missing or invalid Sec-WebSocket-Key' },
  WSLB_ERR_BAD_WEBSOCKET_VERSION: { status: 426, message: 'Unsupported Sec-WebSocket-Version' },
  WSLB_ERR_BAD_METHOD: { status: 400, message: 'A WebSocket upgrade must use GET' },
  WSLB_ERR_METHOD_NOT_ALLOWED: { status: 405, message: 'CONNECT is not supported by a reverse proxy' },
  // Admission
  WSLB_ERR_REJECTED: { status: 403, message: 'Connection rejected' },
  WSLB_ERR_TOO_MANY_PER_CLIENT: { status: 429, message: 'Too many connections from this client' },
  WSLB_ERR_TOO_MANY_CONNECTIONS: { status: 503, message: 'Connection limit reached' },
  WSLB_ERR_SHUTTING_DOWN: { status: 503, closeCode: 1001, message: 'Proxy is shutting down' },
  // Backends
  WSLB_ERR_NO_BACKEND: { status: 503, message: 'No backend available' },
  WSLB_ERR_BACKEND_CONNECT: { status: 502, message: 'Could not connect to a backend' },
  WSLB_ERR_BACKEND_CLOSED: { status: 502, closeCode: 1011, message: 'Backend closed before answering' },
  WSLB_ERR_BACKEND_BAD_RESPONSE: { status: 502, message: 'Backend sent an invalid response' },
  WSLB_ERR_BACKEND_HEADERS_TOO_LARGE: { status: 502, message: 'Backend response headers too large' },
  WSLB_ERR_HANDSHAKE_TIMEOUT: { status: 504, message: 'Backend did not answer the upgrade in time' },
  WSLB_ERR_RESPONSE_TIMEOUT: { status: 504, message: 'Backend did not answer in time' },
  WSLB_ERR_INVALID_BACKEND: { status: 500, message: 'A select tap returned something that is not a backend' },
  // Plugins and hooks
  WSLB_ERR_TAP_FAILED: { status: 500, closeCode: 1011, message: 'A plugin failed' },
  WSLB_ERR_TAP_TIMEOUT: { status: 500, closeCode: 1011, message: 'A plugin did not answer in time' },
  WSLB_ERR_PLUGIN_NOT_FOUND: { status: 500, message: 'Plugin could not be loaded' },
  WSLB_ERR_PLUGIN_INVALID: { status: 500, message: 'Not a wslb plugin' },
  WSLB_ERR_PLUGIN_DUPLICATE: { status: 500, message: 'Plugin registered twice' },
  WSLB_ERR_PLUGIN_DEPENDENCY: { status: 500, message: 'Plugin dependency missing' },
  WSLB_ERR_PLUGIN_CORE_VERSION: { status: 500, message: 'Plugin requires another @wslb/core version' },
  WSLB_ERR_PLUGIN_TIMEOUT: { status: 500, message: 'A plugin did not finish apply() in time' },
  // Configuration and lifecycle
  WSLB_ERR_CONFIG_INVALID: { status: 500, message: 'Invalid configuration' },
  WSLB_ERR_LISTEN: { status: 500, message: 'Could not listen' },
  WSLB_ERR_NOT_LISTENING: { status: 500, message: 'Proxy is not listening' },
  WSLB_ERR_UNCAUGHT: { status: 500, closeCode: 1011, message: 'Uncaught exception' },
  // Tunnel
  WSLB_ERR_IDLE_TIMEOUT: { status: 504, closeCode: 1001, message: 'Tunnel idle too long' },
  WSLB_ERR_HALF_CLOSE_TIMEOUT: { status: 504, message: 'Half-closed tunnel not finished in time' },
  WSLB_ERR_DRAIN_TIMEOUT: { status: 503, closeCode: 1001, message: 'Drain deadline reached' },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof ERRORS;

/** Marks a WslbError across copies of this package (a registry-wide symbol). */
const BRAND = Symbol.for('wslb.error');

export interface WslbErrorOptions {
  status?: number;
  closeCode?: number;
  cause?: unknown;
  headers?: Record<string, string>;
}

/**
 * A fault with a catalog code. Throw it from a tap to reject a connection with a chosen status:
 * `new WslbError('MY_PLUGIN_DENIED', 401)`, `new WslbError(code, 401, 'message')`, or
 * `new WslbError(code, 'message', { status: 401 })`.
 */
export class WslbError extends Error {
  /**
   * `instanceof WslbError` holds for a WslbError of any copy of @wslb/core: a plugin installed
   * with its own copy beside the config still rejects with its chosen status, not a 500.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== WslbError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  readonly code: string;
  readonly status: number;
  readonly closeCode: number;
  readonly headers: Record<string, string> | undefined;
  /**
   * Whether the message may reach the client. True for errors a plugin throws from a tap (the
   * author chose the words); false for wslb's own, whose details (addresses, causes) stay in logs.
   */
  expose = false;
  /** Set on a failed attempt that another backend may take over (nothing was answered yet). */
  retryable = false;

  constructor(code: ErrorCode | (string & {}), status: number, message?: string, options?: WslbErrorOptions);
  constructor(code: ErrorCode | (string & {}), message?: string, options?: WslbErrorOptions);
  constructor(
    code: ErrorCode | (string & {}),
    statusOrMessage?: number | string,
    messageOrOptions?: string | WslbErrorOptions,
    maybeOptions?: WslbErrorOptions,
  ) {
    const known = (ERRORS as Record<string, ErrorDefinition>)[code];
    let message: string | undefined;
    let options: WslbErrorOptions;
    if (typeof statusOrMessage === 'number') {
      message = typeof messageOrOptions === 'string' ? messageOrOptions : undefined;
      options = { ...maybeOptions, status: statusOrMessage };
    } else {
      message = statusOrMessage;
      options = (typeof messageOrOptions === 'object' ? messageOrOptions : undefined) ?? {};
    }
    const status = options.status ?? known?.status ?? 500;
    super(
      // A code of the plugin's own with only a status: the client reads that status's reason phrase.
      message ?? known?.message ?? (options.status !== undefined ? STATUS_CODES[status] : undefined) ?? code,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'WslbError';
    Object.defineProperty(this, BRAND, { value: true });
    this.code = code;
    this.status = status;
    this.closeCode = options.closeCode ?? known?.closeCode ?? 1011;
    this.headers = options.headers;
  }
}

export function createError(code: ErrorCode, message?: string, options?: WslbErrorOptions): WslbError {
  return new WslbError(code, message, options);
}

/** Wraps anything a tap threw so it carries a code and names the hook and plugin. */
export function toWslbError(err: unknown, hook?: string): WslbError {
  if (err instanceof WslbError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new WslbError('WSLB_ERR_TAP_FAILED', hook ? `${hook} hook failed: ${message}` : message, {
    cause: err,
  });
}

/**
 * The text a client may see: the catalog's message for wslb's own faults (details such as backend
 * addresses stay in the logs), the tap's own words for rejections and codes a plugin defined.
 */
export function publicMessage(err: WslbError): string {
  const known = (ERRORS as Record<string, ErrorDefinition>)[err.code];
  return known && !err.expose && err.code !== 'WSLB_ERR_REJECTED' ? known.message : err.message;
}
