import { availableParallelism } from 'node:os';
import type { ProxyConfig } from '@wslb/core';

/** Set by the primary in the environment of the workers it forks. */
export const WORKER_ENV = 'WSLB_CLUSTER_WORKER';

export function workerCount(workers: ProxyConfig['workers']): number {
  if (workers === 'auto') return Math.max(1, availableParallelism());
  return workers ?? 1;
}

/** Whether this process is a worker forked by a wslb primary (node:cluster loads only then). */
export async function isClusterWorker(): Promise<boolean> {
  if (process.env[WORKER_ENV] !== '1') return false;
  const { default: cluster } = await import('node:cluster');
  return cluster.isWorker;
}
