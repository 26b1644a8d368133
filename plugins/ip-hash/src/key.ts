import { isIPv4, isIPv6 } from 'node:net';
import type { ConnectionContext } from '@wslb/core';
import { parseCookie } from 'cookie';

/** Where the hash key comes from; anything missing falls back to the client address. */
export type KeySource =
  | { kind: 'ip' }
  | { kind: 'header'; name: string }
  | { kind: 'query'; name: string }
  | { kind: 'cookie'; name: string };

/** HTTP token characters (RFC 9110), which header and cookie names are made of. */
export const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
export const KEY_PATTERN = `^(ip|header:${TOKEN}|query:.+|cookie:${TOKEN})$`;

/** `"ip"`, `"header:NAME"`, `"query:NAME"` or `"cookie:NAME"`. */
export function parseKeySpec(spec: string): KeySource {
  if (spec === 'ip') return { kind: 'ip' };
  const colon = spec.indexOf(':');
  const kind = spec.slice(0, colon);
  const name = spec.slice(colon + 1);
  if (colon > 0 && name.length > 0) {
    if (kind === 'header') return { kind, name: name.toLowerCase() };
    if (kind === 'query' || kind === 'cookie') return { kind, name };
  }
  throw new TypeError(`invalid key "${spec}": use "ip", "header:NAME", "query:NAME" or "cookie:NAME"`);
}

function maskIPv4(address: string, prefix: number): string {
  if (prefix >= 32) return address;
  const parts = address.split('.').map(Number);
  const value = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
  const masked = prefix <= 0 ? 0 : (value & (~0 << (32 - prefix))) >>> 0;
  return `${masked >>> 24}.${(masked >>> 16) & 255}.${(masked >>> 8) & 255}.${masked & 255}`;
}

/** Eight 16-bit groups of a canonical (WHATWG-serialized) IPv6 address. */
function ipv6Groups(canonical: string): number[] {
  const [head = '', tail] = canonical.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => parseInt(g, 16));
}

function maskIPv6(address: string, prefix: number): string {
  // The URL parser writes any spelling of an address (embedded IPv4, zeros) in one canonical form.
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  if (prefix >= 128) return canonical;
  return ipv6Groups(canonical)
    .map((group, i) => {
      const bits = Math.max(0, Math.min(16, prefix - i * 16));
      return (bits === 0 ? 0 : group & ((0xffff << (16 - bits)) & 0xffff)).toString(16);
    })
    .join(':');
}

/**
 * The client address as a hash key: IPv4 masked to `ipv4Prefix` bits (24 groups a /24 together
 * like nginx's ip_hash), IPv6 to `ipv6Prefix` bits, written in one canonical form.
 */
export function addressKey(address: string, ipv4Prefix = 32, ipv6Prefix = 128): string {
  const plain = address.split('%')[0]!;
  if (isIPv4(plain)) return maskIPv4(plain, ipv4Prefix);
  if (isIPv6(plain)) return maskIPv6(plain, ipv6Prefix);
  return plain;
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** The hash key of a connection: the configured source, else the client address. */
export function keyOf(
  ctx: Pick<ConnectionContext, 'request' | 'clientAddress'>,
  source: KeySource,
  ipv4Prefix = 32,
  ipv6Prefix = 128,
): string {
  const request = ctx.request;
  let value: string | undefined;
  if (request && source.kind !== 'ip') {
    if (source.kind === 'header') {
      value = firstValue(request.headers[source.name]);
    } else if (source.kind === 'query') {
      const q = request.url.indexOf('?');
      if (q >= 0) value = new URLSearchParams(request.url.slice(q + 1)).get(source.name) ?? undefined;
    } else {
      const header = firstValue(request.headers.cookie);
      if (header) value = parseCookie(header)[source.name];
    }
  }
  return value ? value : addressKey(ctx.clientAddress, ipv4Prefix, ipv6Prefix);
}
