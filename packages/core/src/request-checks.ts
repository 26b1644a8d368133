import type { IncomingMessage } from 'node:http';
import { WslbError } from './errors.js';

/** RFC 9112 section 3.2: an HTTP/1.1 request without Host gets a 400, as nginx answers it. */
export function missingHostError(req: IncomingMessage): WslbError | undefined {
  if (req.headers.host !== undefined || req.httpVersion !== '1.1') return undefined;
  return new WslbError('WSLB_ERR_BAD_REQUEST', 'Missing Host header');
}
