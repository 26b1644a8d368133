import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { type WebSocket, WebSocketServer } from 'ws';

export interface TestCertificate {
  cert: string;
  key: string;
  fingerprint: string;
}

/** A self-signed certificate for localhost and 127.0.0.1, made for the test that asks. */
export async function makeCertificate(commonName = 'localhost'): Promise<TestCertificate> {
  const made = await selfsigned.generate([{ name: 'commonName', value: commonName }], {
    notAfterDate: new Date(Date.now() + 2 * 86_400_000),
    keySize: 2048,
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  return { cert: made.cert, key: made.private, fingerprint: new X509Certificate(made.cert).fingerprint256 };
}

/** Writes a certificate and key to a temp folder; `remove()` deletes it. */
export function writeCertificate(cert: TestCertificate, dir = mkdtempSync(join(tmpdir(), 'wslb-tls-'))) {
  writeFileSync(join(dir, 'cert.pem'), cert.cert);
  writeFileSync(join(dir, 'key.pem'), cert.key);
  return {
    dir,
    certFile: join(dir, 'cert.pem'),
    keyFile: join(dir, 'key.pem'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A wss:// server with the given certificate; `onConnection` sets up each socket. */
export async function startWssBackend(
  cert: TestCertificate,
  onConnection: (ws: WebSocket, req: IncomingMessage) => void,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = createHttpsServer({ cert: cert.cert, key: cert.key });
  const wss = new WebSocketServer({ server });
  wss.on('connection', onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        server.close(() => resolve());
      }),
  };
}
