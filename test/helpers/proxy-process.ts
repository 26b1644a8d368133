import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ProxyConfig } from '@wslb/core';
import type { ChildStats, LiveConnection } from './proxy-child.js';

export type { ChildStats, LiveConnection };

export interface ProxyProcess {
  child: ChildProcess;
  port: number;
  url: string;
  /** Heap (after a full GC when `gc`), RSS, open fds and the proxy's counters. */
  stats(gc?: boolean): Promise<ChildStats>;
  /** The connections the proxy counts as live (seen by connect taps, not yet closed). */
  live(): Promise<LiveConnection[]>;
  close(): Promise<void>;
}

/** Starts a proxy (createProxy with `config`) in its own Node process with --expose-gc. */
export async function startProxyProcess(config: Omit<ProxyConfig, 'listen'>): Promise<ProxyProcess> {
  const script = fileURLToPath(new URL('./proxy-child.ts', import.meta.url));
  const child = fork(script, [JSON.stringify(config)], {
    execArgv: ['--expose-gc', '--import', import.meta.resolve('tsx')],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('proxy process did not start')), 15_000);
    child.once('message', (m: { type: string; port: number }) => {
      clearTimeout(timer);
      resolve(m.port);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`proxy process exited with ${code}`));
    });
  });
  const ask = <T>(request: object, answer: string): Promise<T> =>
    new Promise((resolve, reject) => {
      if (!child.connected) {
        reject(new Error('proxy process is gone'));
        return;
      }
      const onMessage = (m: { type: string } & T): void => {
        if (m.type !== answer) return;
        child.off('message', onMessage);
        resolve(m);
      };
      child.on('message', onMessage);
      child.send(request);
    });
  return {
    child,
    port,
    url: `ws://127.0.0.1:${port}`,
    stats: async (gc = true) => (await ask<{ stats: ChildStats }>({ type: 'stats', gc }, 'stats')).stats,
    live: async () => (await ask<{ connections: LiveConnection[] }>({ type: 'live' }, 'live')).connections,
    close: async () => {
      if (child.exitCode === null && child.connected) await ask({ type: 'close' }, 'closed');
      await exited;
    },
  };
}
