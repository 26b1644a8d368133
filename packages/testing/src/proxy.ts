import {
  type Backend,
  type BackendConfig,
  type Plugin,
  type Proxy,
  type ProxyConfig,
  WslbError,
  createLogger,
  createProxy,
} from '@wslb/core';
import { dirname } from 'node:path';
import type { ClientOptions } from 'ws';
import { wslbBinPath } from './binary.js';
import { type OpenedClient, closeAll, openClient } from './clients.js';

/** The request header that pins a test client to one backend (see `TestProxy.pinned`). */
export const PIN_HEADER = 'x-wslb-test-backend';

/** Runs before every plugin's select tap, stickiness included. */
const PIN_STAGE = Number.MIN_SAFE_INTEGER;

export interface TestProxy {
  proxy: Proxy;
  port: number;
  /** `ws://127.0.0.1:port` */
  url: string;
  /** `http://127.0.0.1:port` */
  httpUrl: string;
  /** The pool's backend with this id; throws when there is none. */
  backend(id: string): Backend;
  /** Marks a backend down, as a failed health check would (pool hooks see it). */
  down(id: string, reason?: string): void;
  /** Marks a backend up again, as a passed health check would (an admin drain stays). */
  up(id: string, reason?: string): void;
  /** Drains a backend like the admin API: no new connections, live ones stay. */
  drain(id: string): void;
  /** Lifts a drain like the admin API. */
  enable(id: string): void;
  /**
   * Client options whose sockets go to backend `id` whatever the plugins' select taps would
   * choose. Every other hook still runs for them (a connect tap that wants a token sees them
   * too: add it to `options`). The upgrade is refused with 503 when that backend is not a
   * candidate (down, draining or full).
   */
  pinned(id: string, options?: ClientOptions): ClientOptions;
  /**
   * Opens live sockets pinned to backend `id` until it is full (`active` reaches its
   * `maxConnections`, which must be set), each with `options` (headers, and a `path` with a
   * query, for the plugins' connect taps). They stay open until `close()` or `closeAll()`.
   */
  fill(id: string, options?: TestClientOptions): Promise<OpenedClient[]>;
  /** Opens `count` sockets one after another; closed by `close()`. */
  open(
    count: number,
    options?: TestClientOptions,
  ): Promise<{ clients: OpenedClient[]; perBackend: Record<string, number> }>;
  /** Closes the sockets opened by `open` and `fill`, then the proxy (no drain). */
  close(): Promise<void>;
}

/** Options of the sockets a test proxy opens: `ws` client options and a path (`/room?token=...`). */
export type TestClientOptions = ClientOptions & { path?: string };

export type TestProxyConfig = Omit<ProxyConfig, 'listen' | 'backends'> & {
  backends: ProxyConfig['backends'];
  plugins?: Array<Plugin | string | { use: string; options?: Record<string, unknown> }>;
};

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Starts a proxy in this process on 127.0.0.1, port 0. Plugin names resolve from the working
 * directory, then from the `wslb` binary's folder. Logs are silent unless WSLB_TEST_LOG names
 * a level. `close()` closes the sockets the helpers opened, then the proxy with a 0 ms drain.
 */
export async function startProxy(config: TestProxyConfig): Promise<TestProxy> {
  const level = (process.env.WSLB_TEST_LOG ?? 'silent') as 'silent';
  const proxy = createProxy(
    { ...config, listen: { host: '127.0.0.1', port: 0 } },
    // Plugin names resolve as for the binary: from the test's folder, then beside the binary
    // (the built-in plugins, e.g. the default round-robin).
    { logger: createLogger({ level }), pluginPaths: [process.cwd(), dirname(wslbBinPath())] },
  );
  const [address] = await proxy.listen();
  // A test-only override, tapped outside any plugin. It chooses before every select tap, so the
  // plugins' select taps never see pinned sockets; all their other hooks (connect, handshake,
  // response, open, close) do.
  proxy.hooks.select.tap({ name: 'wslb-testing:pin', stage: PIN_STAGE }, (ctx, candidates) => {
    const id = headerValue(ctx.request?.headers[PIN_HEADER]);
    if (id === undefined) return undefined;
    const chosen = candidates.find((b) => b.id === id);
    if (!chosen) {
      throw new WslbError('WSLB_ERR_NO_BACKEND', `pinned backend "${id}" is not available`, {
        headers: { 'retry-after': '1' },
      });
    }
    return chosen;
  });
  const port = address!.port;
  const url = `ws://127.0.0.1:${port}`;
  const opened = new Set<OpenedClient>();
  const track = (client: OpenedClient): OpenedClient => {
    opened.add(client);
    client.ws.once('close', () => opened.delete(client));
    return client;
  };

  const backend = (id: string): Backend => {
    const found = proxy.pool.get(id);
    if (!found) throw new Error(`no backend "${id}" in the pool (${proxy.pool.list().map((b) => b.id)})`);
    return found;
  };
  const pinned = (id: string, options: ClientOptions = {}): ClientOptions => ({
    ...options,
    headers: { ...options.headers, [PIN_HEADER]: id },
  });

  return {
    proxy,
    port,
    url,
    httpUrl: `http://127.0.0.1:${port}`,
    backend,
    down: (id, reason = 'marked down by test') => {
      proxy.pool.setState(backend(id), 'down', reason, 'health');
    },
    up: (id, reason = 'marked up by test') => {
      proxy.pool.setState(backend(id), 'up', reason, 'health');
    },
    drain: (id) => {
      proxy.pool.drain(backend(id));
    },
    enable: (id) => {
      proxy.pool.enable(backend(id));
    },
    pinned,
    fill: async (id, { path = '', ...options } = {}) => {
      const target = backend(id);
      if (target.maxConnections <= 0) {
        throw new Error(`backend "${id}" has no maxConnections, so it cannot be full`);
      }
      const clients: OpenedClient[] = [];
      while (target.active < target.maxConnections) {
        const client = track(await openClient(`${url}${path}`, pinned(id, options)));
        if (client.backend !== undefined && client.backend !== id) {
          throw new Error(`a socket pinned to "${id}" reached "${client.backend}"`);
        }
        clients.push(client);
      }
      return clients;
    },
    open: async (count, { path = '', ...options } = {}) => {
      const clients: OpenedClient[] = [];
      const perBackend: Record<string, number> = {};
      for (let i = 0; i < count; i++) {
        const client = track(await openClient(`${url}${path}`, options));
        clients.push(client);
        const key = client.backend ?? 'unknown';
        perBackend[key] = (perBackend[key] ?? 0) + 1;
      }
      return { clients, perBackend };
    },
    close: async () => {
      await closeAll([...opened]);
      await proxy.close({ drain: 0 });
    },
  };
}

/** Backend configs (`{ id, url }`) for echo backends, with extra fields per backend id. */
export function backendConfigs(
  backends: ReadonlyArray<{ id: string; url: string }>,
  extra: Record<string, Partial<Omit<BackendConfig, 'id' | 'url'>>> = {},
): BackendConfig[] {
  return backends.map((b) => ({ id: b.id, url: b.url, ...extra[b.id] }));
}
