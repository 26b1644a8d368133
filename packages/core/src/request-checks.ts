import type { IncomingMessage } from 'node:http';
import { WslbError } from './errors.js';

/**
 * RFC 9112 section 3.2: an HTTP/1.1 request without Host, or any request with more than one Host
 * line, gets a 400, as nginx answers them. Node keeps the first of several Host lines, while a
 * backend or cache behind may read another: the request would mean two things.
 */
export function hostError(req: IncomingMessage): WslbError | undefined {
  if (req.headers.host === undefined) {
    return req.httpVersion === '1.1'
      ? new WslbError('WSLB_ERR_BAD_REQUEST', 'Missing Host header')
      : undefined;
  }
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host' && ++hosts > 1) {
      return new WslbError('WSLB_ERR_BAD_REQUEST', 'Duplicate Host header');
    }
  }
  return undefined;
}
