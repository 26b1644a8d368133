import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { ConfigIssue, ProxyConfig } from '@wslb/core';

type Read = { data: Buffer } | { issue: ConfigIssue };

function readAt(baseDir: string, file: string, path: string): Read {
  try {
    return { data: readFileSync(isAbsolute(file) ? file : join(baseDir, file)) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return { issue: { path, message: `cannot read ${file}: ${code}` } };
  }
}

function firstLine(err: unknown): string {
  return ((err as Error).message ?? String(err)).split('\n')[0]!;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** Why a CA file cannot serve (TLS itself skips what is not a certificate, silently). */
function caProblem(data: Buffer): string | undefined {
  const blocks = data.toString('latin1').match(PEM_CERTIFICATE);
  if (!blocks) return 'not a CA certificate: no PEM certificate in it';
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (err) {
      return `not a CA certificate: ${firstLine(err)}`;
    }
  }
  return undefined;
}

/**
 * The files a config names (listener certificates and keys, CA files), read and parsed the way
 * the proxy will use them, as `nginx -t` does: a missing file, a key that does not match its
 * certificate or a wrong passphrase is a config error with its JSON path, found by `--check` and
 * before the proxy starts rather than when a listener opens.
 */
export async function configFileIssues(config: ProxyConfig, baseDir: string): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  const listens = Array.isArray(config.listen) ? config.listen : config.listen ? [config.listen] : [];
  const named = listens.some((l) => l.tls) || config.backends.some((b) => typeof b.tls?.ca === 'string');
  if (!named) return issues;
  // Loaded only for a config that names TLS files.
  const { createSecureContext } = await import('node:tls');

  listens.forEach((listen, i) => {
    const tls = listen.tls;
    if (!tls) return;
    const at = Array.isArray(config.listen) ? `/listen/${i}/tls` : '/listen/tls';
    const cert = readAt(baseDir, tls.cert, `${at}/cert`);
    const key = readAt(baseDir, tls.key, `${at}/key`);
    const ca = tls.ca === undefined ? undefined : readAt(baseDir, tls.ca, `${at}/ca`);
    let failed = false;
    const caRead = ca && 'data' in ca ? caProblem(ca.data) : undefined;
    if (caRead) {
      issues.push({ path: `${at}/ca`, message: caRead });
      failed = true;
    }
    for (const read of [cert, key, ca]) {
      if (read && 'issue' in read) {
        issues.push(read.issue);
        failed = true;
      }
    }
    if (failed) return;
    try {
      createSecureContext({
        cert: (cert as { data: Buffer }).data,
        key: (key as { data: Buffer }).data,
        ca: ca && 'data' in ca ? ca.data : undefined,
        passphrase: tls.passphrase,
      });
    } catch (err) {
      issues.push({ path: at, message: `certificate and key cannot be used: ${firstLine(err)}` });
    }
  });

  config.backends.forEach((backend, i) => {
    const ca = backend.tls?.ca;
    if (typeof ca !== 'string' || ca.includes('-----BEGIN')) return;
    const read = readAt(baseDir, ca, `/backends/${i}/tls/ca`);
    if ('issue' in read) {
      issues.push(read.issue);
      return;
    }
    const problem = caProblem(read.data);
    if (problem) issues.push({ path: `/backends/${i}/tls/ca`, message: problem });
  });
  return issues;
}
