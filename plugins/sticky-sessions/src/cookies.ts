import { type SetCookie, stringifySetCookie } from 'cookie';
import type { HeaderMap, HeaderValue } from '@wslb/core';

function headerText(value: HeaderValue | undefined): string | undefined {
  return Array.isArray(value) ? value.join('; ') : value;
}

/** Every value the `Cookie` header gives to `name` (a browser may send several), in order. */
export function cookieValues(header: HeaderValue | undefined, name: string): string[] {
  const text = headerText(header);
  const values: string[] = [];
  if (!text) return values;
  for (const pair of text.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim() !== name) continue;
    let value = pair.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    values.push(value);
  }
  return values;
}

/**
 * The `Cookie` header without the `name` cookie; undefined when nothing else is left, so the
 * backend never sees the balancer's cookie.
 */
export function withoutCookie(header: HeaderValue | undefined, name: string): string | undefined {
  const text = headerText(header);
  if (!text) return undefined;
  const kept = text
    .split(';')
    .map((pair) => pair.trim())
    .filter((pair) => {
      if (pair === '') return false;
      const eq = pair.indexOf('=');
      return (eq < 0 ? pair : pair.slice(0, eq).trim()) !== name;
    });
  return kept.length > 0 ? kept.join('; ') : undefined;
}

/** The name a `Set-Cookie` line sets. */
export function setCookieName(line: string): string {
  const eq = line.indexOf('=');
  const semi = line.indexOf(';');
  const end = eq < 0 || (semi >= 0 && semi < eq) ? (semi < 0 ? line.length : semi) : eq;
  return line.slice(0, end).trim();
}

/** `Set-Cookie` lines as an array, whatever shape a header map holds them in. */
export function setCookieLines(value: HeaderValue | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? [...value] : [value];
}

export type CookieAttributes = Omit<SetCookie, 'name' | 'value'>;

export function serializeCookie(name: string, value: string, attributes: CookieAttributes): string {
  return stringifySetCookie({ name, value, ...attributes });
}

/**
 * HAProxy's `nocache`: a response that sets the stickiness cookie must not be stored by a shared
 * cache (which would hand one client's cookie to others), so it becomes `private`.
 */
export function privateCacheControl(headers: HeaderMap): void {
  const current = headerText(headers['cache-control']);
  if (!current) {
    headers['cache-control'] = 'private';
    return;
  }
  const directives = current
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d !== '');
  const names = directives.map((d) => d.split('=')[0]!.trim().toLowerCase());
  if (names.includes('private') || names.includes('no-store')) return;
  const kept = directives.filter((_, i) => names[i] !== 'public' && names[i] !== 's-maxage');
  headers['cache-control'] = ['private', ...kept].join(', ');
}
