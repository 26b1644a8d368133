import type { BackendConfig } from '@wslb/core';
import { type EchoBackend, type EchoBackendOptions, startEchoBackend } from './echo-backend.js';
import { type TestProxy, type TestProxyConfig, backendConfigs, startProxy } from './proxy.js';

export interface ClusterOptions extends Omit<TestProxyConfig, 'backends'> {
  /** How many echo backends (named `b1`, `b2`...), or the options of each. Default 3. */
  backends?: number | EchoBackendOptions[];
  /** Pool fields beyond id and url, by backend id: `{ b1: { maxConnections: 2 } }`. */
  backendOptions?: Record<string, Partial<Omit<BackendConfig, 'id' | 'url'>>>;
}

/** Echo backends and a proxy in front of them; `close()` stops clients, proxy and backends. */
export interface Cluster extends TestProxy {
  backends: EchoBackend[];
  /** The echo backend with this id. */
  echo(id: string): EchoBackend;
}

/**
 * Starts echo backends and an in-process proxy over them on port 0, with the given plugins and
 * config: the usual setup of a plugin test in one call.
 */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const { backends: wanted = 3, backendOptions = {}, ...config } = options;
  const specs: EchoBackendOptions[] =
    typeof wanted === 'number' ? Array.from({ length: wanted }, (_, i) => ({ id: `b${i + 1}` })) : wanted;
  const backends = await Promise.all(specs.map((spec) => startEchoBackend(spec)));
  let proxy: TestProxy;
  try {
    proxy = await startProxy({ ...config, backends: backendConfigs(backends, backendOptions) });
  } catch (err) {
    await Promise.all(backends.map((b) => b.close()));
    throw err;
  }
  return {
    ...proxy,
    backends,
    echo: (id) => {
      const found = backends.find((b) => b.id === id);
      if (!found) throw new Error(`no echo backend "${id}"`);
      return found;
    },
    close: async () => {
      await proxy.close();
      await Promise.all(backends.map((b) => b.close()));
    },
  };
}
