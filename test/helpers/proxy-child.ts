/*
 * A proxy in a child process of its own (see proxy-process.ts), so its heap, RSS and fds can be
 * measured apart from the load that tests generate. Runs with --expose-gc; answers IPC requests.
 */
import { readdirSync } from 'node:fs';
import { type ConnectionContext, createLogger, createProxy, type ProxyConfig } from '@wslb/core';

export interface ChildStats {
  heapUsed: number;
  rss: number;
  fds: number;
  active: number;
  total: number;
  backends: Array<{ id: string; active: number; total: number }>;
}

type Request = { type: 'stats'; gc: boolean } | { type: 'live' } | { type: 'close' };

/** What a live connection was doing, to tell which path left one counted. */
export interface LiveConnection {
  id: number;
  kind: string;
  method: string | undefined;
  url: string | undefined;
  backend: string | undefined;
  client: string;
  ageMs: number;
}

const config = JSON.parse(process.argv[2]!) as ProxyConfig;
const proxy = createProxy(
  { ...config, listen: { host: '127.0.0.1', port: 0 } },
  { logger: createLogger({ level: (process.env.WSLB_TEST_LOG ?? 'silent') as 'silent' }) },
);
const live = new Map<number, ConnectionContext>();
proxy.hooks.connect.tap('live-connections', (ctx) => {
  live.set(ctx.id, ctx);
  return undefined;
});
proxy.hooks.close.tap('live-connections', (ctx) => {
  live.delete(ctx.id);
});
const [address] = await proxy.listen();

const gc = (globalThis as { gc?: () => void }).gc;

function stats(collect: boolean): ChildStats {
  if (collect && gc) {
    // Twice: the first pass can leave weakly held objects for the second.
    gc();
    gc();
  }
  return {
    heapUsed: process.memoryUsage().heapUsed,
    rss: process.memoryUsage.rss(),
    fds: readdirSync('/proc/self/fd').length,
    active: proxy.connections.active,
    total: proxy.connections.total,
    backends: proxy.pool.list().map((b) => ({ id: b.id, active: b.active, total: b.total })),
  };
}

process.on('message', (message: Request) => {
  if (message.type === 'stats') process.send!({ type: 'stats', stats: stats(message.gc) });
  else if (message.type === 'live') {
    const connections: LiveConnection[] = [...live.values()].map((ctx) => ({
      id: ctx.id,
      kind: ctx.kind,
      method: ctx.request?.method,
      url: ctx.request?.url,
      backend: ctx.backend?.id,
      client: `${ctx.remoteAddress}:${ctx.remotePort}`,
      ageMs: Date.now() - ctx.startTime,
    }));
    process.send!({ type: 'live', connections });
  } else if (message.type === 'close') {
    void proxy.close({ drain: 0 }).then(() => {
      process.send!({ type: 'closed' }, () => process.disconnect());
    });
  }
});
process.send!({ type: 'listening', port: address!.port });
