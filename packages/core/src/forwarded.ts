import { BlockList, isIPv6 } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type { HeaderMap } from './hooks.js';

/** `::ffff:1.2.3.4` -> `1.2.3.4`; everything else unchanged. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** A CIDR allow list of proxies whose forwarding headers are believed. */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly empty: boolean;

  constructor(cidrs: readonly string[] = []) {
    for (const cidr of cidrs) {
      const [address, prefix] = cidr.split('/');
      const type = isIPv6(address!) ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.#list.addAddress(address!, type);
      else this.#list.addSubnet(address!, Number(prefix), type);
    }
    this.empty = cidrs.length === 0;
  }

  has(address: string): boolean {
    if (this.empty || !address) return false;
    try {
      return this.#list.check(address, isIPv6(address) ? 'ipv6' : 'ipv4');
    } catch {
      return false;
    }
  }
}

function headerString(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

function forwardedFor(header: string): string[] {
  const out: string[] = [];
  for (const element of header.split(',')) {
    for (const pair of element.split(';')) {
      const eq = pair.indexOf('=');
      if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
      let value = pair
        .slice(eq + 1)
        .trim()
        .replace(/^"|"$/g, '');
      if (value.startsWith('[')) value = value.slice(1, value.indexOf(']'));
      else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(value)) value = value.slice(0, value.indexOf(':'));
      out.push(value);
    }
  }
  return out;
}

/**
 * The client address: the peer, or, when the peer is trusted, the right-most address in its
 * X-Forwarded-For (or Forwarded) chain that is not itself a trusted proxy.
 */
export function clientAddressOf(peer: string, headers: IncomingHttpHeaders, trusted: TrustedProxies): string {
  if (!trusted.has(peer)) return peer;
  const xff = headerString(headers['x-forwarded-for']);
  const forwarded = headerString(headers.forwarded);
  const chain = xff ? xff.split(',').map((s) => s.trim()) : forwarded ? forwardedFor(forwarded) : [];
  for (let i = chain.length - 1; i >= 0; i--) {
    const address = normalizeAddress(chain[i]);
    if (address && !trusted.has(address)) return address;
  }
  return normalizeAddress(chain[0]) || peer;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** Copies request headers without hop-by-hop ones (and those the Connection header names). */
export function endToEndHeaders(headers: IncomingHttpHeaders): HeaderMap {
  const named = headerString(headers.connection);
  const extra = named ? new Set(named.split(',').map((s) => s.trim().toLowerCase())) : undefined;
  const out: HeaderMap = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || extra?.has(name)) continue;
    out[name] = headers[name];
  }
  return out;
}

/** RFC 7239: a token as is, anything else (a host with a port: `:` is no token char) quoted. */
function forwardedValue(value: string): string {
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`;
}

function forwardedNode(address: string): string {
  return isIPv6(address) ? `"[${address}]"` : address;
}

/**
 * Sets X-Forwarded-For/-Proto/-Host and Forwarded. From an untrusted peer incoming values are
 * replaced; from a trusted proxy the peer is appended to the chain it sent.
 */
export function setForwardedHeaders(
  out: HeaderMap,
  incoming: IncomingHttpHeaders,
  peer: string,
  peerTrusted: boolean,
  secure: boolean,
): void {
  const proto = secure ? 'https' : 'http';
  const host = headerString(incoming.host);
  const xff = peerTrusted ? headerString(incoming['x-forwarded-for']) : undefined;
  out['x-forwarded-for'] = xff ? `${xff}, ${peer}` : peer;
  out['x-forwarded-proto'] = (peerTrusted && headerString(incoming['x-forwarded-proto'])) || proto;
  const forwardedHost = (peerTrusted && headerString(incoming['x-forwarded-host'])) || host;
  if (forwardedHost) out['x-forwarded-host'] = forwardedHost;
  else delete out['x-forwarded-host'];
  let element = `for=${forwardedNode(peer)};proto=${proto}`;
  if (host) element += `;host=${forwardedValue(host)}`;
  const previous = peerTrusted ? headerString(incoming.forwarded) : undefined;
  out.forwarded = previous ? `${previous}, ${element}` : element;
}
