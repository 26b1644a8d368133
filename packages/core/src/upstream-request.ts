import type { IncomingMessage } from 'node:http';
import type { Backend } from './backend.js';
import { WslbError } from './errors.js';
import { endToEndHeaders, setForwardedHeaders } from './forwarded.js';
import type { HeaderMap, UpstreamRequest } from './hooks.js';

/**
 * The request wslb sends to a backend: end-to-end headers of the client's request, forwarding
 * headers, the backend's Host override and path prefix. Handshake taps edit it afterwards.
 */
export function buildUpstreamRequest(
  req: IncomingMessage,
  backend: Backend,
  peer: string,
  peerTrusted: boolean,
  secure: boolean,
): UpstreamRequest {
  const headers = endToEndHeaders(req.headers);
  setForwardedHeaders(headers, req.headers, peer, peerTrusted, secure);
  if (backend.hostHeader) headers.host = backend.hostHeader;
  const url = req.url ?? '/';
  return {
    method: req.method ?? 'GET',
    path: backend.basePath + (url.startsWith('/') ? url : `/${url}`),
    headers,
  };
}

const UNSAFE = /[\r\n\0]/;

function checkSafe(value: string): string {
  if (UNSAFE.test(value)) throw new WslbError('WSLB_ERR_TAP_FAILED', 'header or path with a line break');
  return value;
}

/** Serializes the request head for a WebSocket upgrade: Connection/Upgrade set anew. */
export function upgradeRequestHead(request: UpstreamRequest): string {
  let head = `${checkSafe(request.method)} ${checkSafe(request.path)} HTTP/1.1\r\n`;
  const headers: HeaderMap = request.headers;
  for (const name in headers) {
    if (name === 'connection' || name === 'upgrade') continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) head += `${checkSafe(name)}: ${checkSafe(v)}\r\n`;
    else head += `${checkSafe(name)}: ${checkSafe(value)}\r\n`;
  }
  return head + 'connection: Upgrade\r\nupgrade: websocket\r\n\r\n';
}
