import { isIP } from 'node:net';
import type { AdminConfig } from '@wslb/core';

export const DEFAULT_ADMIN_HOST = '127.0.0.1';

/** Whether a host name or address only reaches this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  return h.startsWith('::ffff:127.');
}

/**
 * Rules of the admin config that its schema cannot say: a listener reachable from other machines
 * must require a token. Returns the message for `/admin`, or undefined.
 */
export function adminConfigIssue(admin: AdminConfig | undefined): string | undefined {
  if (!admin) return undefined;
  const host = admin.host ?? DEFAULT_ADMIN_HOST;
  if (!isLoopbackHost(host) && !admin.token) {
    return `admin listener on non-loopback host "${host}" needs a "token"`;
  }
  return undefined;
}
