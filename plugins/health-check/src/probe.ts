import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { statusAccepted, type ActiveSettings, type CheckType } from './options.js';
import { runWsCheck } from './ws-check.js';

/**
 * What a probe needs to know of a backend: plain data, so that probes can later run in another
 * process than the one that applies their results.
 */
export interface ProbeTarget {
  id: string;
  hostname: string;
  port: number;
  secure: boolean;
  /** Path prefix of the backend url, prepended to the check path. */
  basePath: string;
  /** Host header to send instead of host:port. */
  hostHeader?: string | undefined;
  tls?: { ca?: string | Buffer | Array<string | Buffer>; rejectUnauthorized?: boolean; servername?: string };
  proxyProtocol?: 'v1' | 'v2' | undefined;
}

/** The outcome of one check. */
export interface ProbeResult {
  ok: boolean;
  type: CheckType;
  /** Why it failed, or what succeeded ("101 then close", "HTTP 200", "connected"). */
  reason: string;
  durationMs: number;
  /** HTTP status the backend answered (http and ws checks), when it answered. */
  status?: number;
}

const USER_AGENT = 'wslb-health-check';
/** PROXY protocol v2 signature, then version 2 / command LOCAL, family UNSPEC, no addresses. */
const PROXY_V2_LOCAL = Buffer.concat([
  Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]),
  Buffer.from([0x20, 0x00, 0x00, 0x00]),
]);

function hostForUrl(hostname: string): string {
  return isIP(hostname) === 6 ? `[${hostname}]` : hostname;
}

function servername(target: ProbeTarget): string | undefined {
  return target.tls?.servername ?? (isIP(target.hostname) ? undefined : target.hostname);
}

/**
 * The socket of an http or ws check. A backend that expects the PROXY protocol gets a header that
 * says the connection is the proxy's own (v1 UNKNOWN, v2 LOCAL), like HAProxy's check-send-proxy.
 */
function checkConnection(target: ProbeTarget): Socket {
  const raw = netConnect({ host: target.hostname, port: target.port });
  if (target.proxyProtocol === 'v1') raw.write('PROXY UNKNOWN\r\n');
  else if (target.proxyProtocol === 'v2') raw.write(PROXY_V2_LOCAL);
  if (!target.secure) return raw;
  return tlsConnect({
    socket: raw,
    servername: servername(target),
    ca: target.tls?.ca,
    rejectUnauthorized: target.tls?.rejectUnauthorized ?? true,
    ALPNProtocols: ['http/1.1'],
  });
}

function hostHeader(target: ProbeTarget): string {
  return target.hostHeader ?? `${hostForUrl(target.hostname)}:${target.port}`;
}

function describeError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code && !err.message.includes(code) ? `${code} ${err.message}` : err.message;
}

/**
 * Runs `start` with a settle-once callback, a deadline and an abort signal. `start` returns the
 * function that releases what it opened; it runs once, whatever settled the check.
 */
function runProbe(
  type: CheckType,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  start: (settle: (ok: boolean, reason: string, status?: number) => void) => () => void,
): Promise<ProbeResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    let done = false;
    let release: (() => void) | undefined = undefined;
    const settle = (ok: boolean, reason: string, status?: number): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      release?.();
      resolve(
        status === undefined ? { ok, type, reason, durationMs } : { ok, type, reason, durationMs, status },
      );
    };
    const onAbort = (): void => settle(false, 'cancelled');
    const timer = setTimeout(() => settle(false, `timed out after ${timeoutMs} ms`), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    release = start(settle);
    // `start` may have settled synchronously, before `release` was known.
    if (done) release();
  });
}

/** Connects and closes: the port accepts connections (HAProxy's default check). */
export function probeTcp(target: ProbeTarget, timeoutMs: number, signal?: AbortSignal): Promise<ProbeResult> {
  return runProbe('tcp', timeoutMs, signal, (settle) => {
    const socket = netConnect({ host: target.hostname, port: target.port });
    socket.once('connect', () => settle(true, 'connected'));
    socket.on('error', (err) => settle(false, `connect failed: ${describeError(err)}`));
    socket.once('close', () => settle(false, 'connection closed'));
    return () => socket.destroy();
  });
}

/** GET `path`; the status must be in `expect`. */
export function probeHttp(
  target: ProbeTarget,
  settings: Pick<ActiveSettings, 'path' | 'expect' | 'headers' | 'timeout'>,
  signal?: AbortSignal,
): Promise<ProbeResult> {
  return runProbe('http', settings.timeout, signal, (settle) => {
    const send = target.secure ? httpsRequest : httpRequest;
    const req: ClientRequest = send({
      host: target.hostname,
      port: target.port,
      method: 'GET',
      path: `${target.basePath}${settings.path}`,
      headers: {
        'user-agent': USER_AGENT,
        host: hostHeader(target),
        ...settings.headers,
        connection: 'close',
      },
      // No agent: a fresh connection per check, made (TLS, PROXY header) by checkConnection.
      createConnection: () => checkConnection(target),
    });
    req.on('response', (res: IncomingMessage) => {
      res.resume();
      const status = res.statusCode ?? 0;
      if (statusAccepted(status, settings.expect)) settle(true, `HTTP ${status}`, status);
      else settle(false, `HTTP ${status} not in expected statuses`, status);
    });
    req.on('error', (err) => settle(false, `request failed: ${describeError(err)}`));
    req.end();
    return () => req.destroy();
  });
}

/**
 * A real WebSocket upgrade on `path`: the backend must answer 101 (with a valid accept key),
 * then the check closes with 1000 and waits for the close to complete. With `ping`, a ping must
 * be answered by a pong before closing.
 */
export function probeWs(
  target: ProbeTarget,
  settings: Pick<ActiveSettings, 'path' | 'headers' | 'timeout' | 'ping'>,
  signal?: AbortSignal,
): Promise<ProbeResult> {
  return runProbe('ws', settings.timeout, signal, (settle) =>
    runWsCheck(
      checkConnection(target),
      {
        path: `${target.basePath}${settings.path}`,
        host: hostHeader(target),
        userAgent: USER_AGENT,
        headers: settings.headers,
        ping: settings.ping,
      },
      settle,
    ),
  );
}

/** Runs the configured check once. */
export function probe(
  target: ProbeTarget,
  settings: ActiveSettings,
  signal?: AbortSignal,
): Promise<ProbeResult> {
  switch (settings.type) {
    case 'tcp':
      return probeTcp(target, settings.timeout, signal);
    case 'http':
      return probeHttp(target, settings, signal);
    case 'ws':
      return probeWs(target, settings, signal);
  }
}
