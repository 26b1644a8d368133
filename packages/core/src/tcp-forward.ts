import type { Socket } from 'node:net';
import { Connection } from './context.js';
import type { Engine } from './engine.js';
import { toWslbError } from './errors.js';
import { peerOf } from './proxy-protocol.js';
import { reasonOf } from './ws-upgrade.js';

function ignoreError(): void {}

/**
 * Mode "tcp": L4 passthrough (nginx `stream`). The client's bytes are not read until a backend
 * is connected, so a TLS ClientHello (wss passthrough) reaches the backend untouched.
 */
export async function handleTcpConnection(engine: Engine, client: Socket, secure: boolean): Promise<void> {
  client.on('error', ignoreError);
  client.pause();
  const { address, port } = peerOf(client);
  const ctx = new Connection(engine.log, 'tcp', address, port, address, secure, undefined);
  const refused = engine.admit(ctx);
  if (refused) {
    engine.reportError(ctx, refused);
    client.destroy();
    return;
  }
  let clientGone = false;
  let backendSocket: Socket | undefined;
  const onClientGone = (): void => {
    clientGone = true;
    backendSocket?.destroy();
  };
  client.once('close', onClientGone);
  try {
    const rejected = await engine.runConnect(ctx);
    if (rejected) throw rejected;
    const socket = await engine.withBackend(
      ctx,
      async (backend) => {
        const s = await engine.dial(backend, ctx, client);
        backendSocket = s;
        return s;
      },
      () => clientGone,
    );
    if (clientGone) throw new Error('client went away');
    client.off('close', onClientGone);
    client.off('error', ignoreError);
    const tunnel = engine.openTunnel(client, socket, ctx);
    const openError = engine.openError(ctx);
    if (openError) {
      tunnel.fail(openError);
      return;
    }
    tunnel.start();
  } catch (err) {
    client.off('close', onClientGone);
    backendSocket?.destroy();
    client.destroy();
    const error = toWslbError(err);
    if (!clientGone) engine.reportError(ctx, error);
    engine.finish(
      ctx,
      clientGone ? 'client-closed' : reasonOf(error),
      0,
      clientGone ? undefined : error,
      client.bytesRead,
      client.bytesWritten,
    );
  }
}
