import { createLogger, createProxy, type Plugin, type Proxy, type ProxyConfig } from '@wslb/core';

export interface TestProxy {
  proxy: Proxy;
  port: number;
  /** `ws://127.0.0.1:port` */
  url: string;
  /** `http://127.0.0.1:port` */
  httpUrl: string;
  close(): Promise<void>;
}

export type TestProxyConfig = Omit<ProxyConfig, 'listen' | 'backends'> & {
  backends: ProxyConfig['backends'];
  plugins?: Array<Plugin | string | { use: string; options?: Record<string, unknown> }>;
};

/**
 * Starts a proxy in this process on 127.0.0.1, port 0. Logs are silent unless WSLB_TEST_LOG names
 * a level. `close()` drains for 0 ms, closing every tunnel.
 */
export async function startProxy(config: TestProxyConfig): Promise<TestProxy> {
  const level = (process.env.WSLB_TEST_LOG ?? 'silent') as 'silent';
  const proxy = createProxy(
    { ...config, listen: { host: '127.0.0.1', port: 0 } },
    { logger: createLogger({ level }), pluginPaths: [process.cwd()] },
  );
  const [address] = await proxy.listen();
  const port = address!.port;
  return {
    proxy,
    port,
    url: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    close: () => proxy.close({ drain: 0 }),
  };
}
