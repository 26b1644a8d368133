import { connect as netConnect, isIP, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import type { Backend } from './backend.js';
import { WslbError } from './errors.js';

export const KEEPALIVE_MS = 60_000;

/** Keepalive and no-delay on every proxied socket, so dead peers free their fds. */
export function tuneSocket(socket: Socket): void {
  socket.setNoDelay(true);
  socket.setKeepAlive(true, KEEPALIVE_MS);
}

/**
 * Opens a TCP (or TLS) connection to a backend. Rejects with a coded error on refusal, reset or
 * when `timeoutMs` passes; the socket is destroyed in every failure case.
 */
export function dialBackend(backend: Backend, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    let socket: Socket;
    if (backend.secure) {
      const tls = backend.tls;
      const servername = tls?.servername ?? (isIP(backend.hostname) ? undefined : backend.hostname);
      // Half-open capable (Node passes this on to the socket; @types/node omits it for TLS).
      const options: ConnectionOptions & { allowHalfOpen: boolean } = {
        host: backend.hostname,
        port: backend.port,
        servername,
        ca: tls?.ca,
        rejectUnauthorized: tls?.rejectUnauthorized ?? true,
        ALPNProtocols: ['http/1.1'],
        allowHalfOpen: true,
      };
      socket = tlsConnect(options);
    } else {
      // Half-open capable: a backend's FIN must not end the client-to-backend direction too.
      socket = netConnect({ host: backend.hostname, port: backend.port, allowHalfOpen: true });
    }
    const readyEvent = backend.secure ? 'secureConnect' : 'connect';
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      if (timer) clearTimeout(timer);
      socket.off(readyEvent, onReady);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const fail = (err: WslbError): void => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onReady = (): void => {
      cleanup();
      tuneSocket(socket);
      resolve(socket);
    };
    const onError = (err: Error): void =>
      fail(
        new WslbError('WSLB_ERR_BACKEND_CONNECT', `connect to ${backend.id} failed: ${err.message}`, {
          cause: err,
        }),
      );
    const onClose = (): void =>
      fail(new WslbError('WSLB_ERR_BACKEND_CONNECT', `connect to ${backend.id} closed`));
    if (timeoutMs > 0) {
      timer = setTimeout(
        () =>
          fail(
            new WslbError(
              'WSLB_ERR_BACKEND_CONNECT',
              `connect to ${backend.id} timed out after ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
    }
    socket.once(readyEvent, onReady);
    socket.on('error', onError);
    socket.once('close', onClose);
  });
}
