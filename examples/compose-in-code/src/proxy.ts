import {
  type Backend,
  type Plugin,
  type Proxy,
  type ProxyConfig,
  STAGE_OVERRIDE,
  createProxy,
} from '@wslb/core';
import roundRobin from '@wslb/round-robin';

/**
 * A plugin written inline: sockets whose path starts with /admin/ always go to one backend
 * (while it is available); everything else is left to the balancer.
 */
export function adminRoute(adminBackendId: string): Plugin {
  return {
    name: 'admin-route',
    apply(proxy) {
      proxy.hooks.select.tap({ name: 'admin-route', stage: STAGE_OVERRIDE }, (ctx, candidates) => {
        if (!ctx.request?.url.startsWith('/admin/')) return undefined;
        return candidates.find((b: Backend) => b.id === adminBackendId);
      });
      // Only admins may open /admin/ sockets: a connect tap turns the others away with 401.
      proxy.hooks.connect.tap('admin-route', (ctx) => {
        if (!ctx.request?.url.startsWith('/admin/')) return undefined;
        return ctx.request.headers.authorization === 'Bearer let-me-in'
          ? undefined
          : { status: 401, reason: 'admin sockets need a token', headers: { 'www-authenticate': 'Bearer' } };
      });
    },
  };
}

/** The proxy of this example: round-robin over every backend, /admin/ pinned to the first. */
export function buildProxy(backends: ProxyConfig['backends'], port = 8080): Proxy {
  return createProxy({
    listen: { host: '127.0.0.1', port },
    backends,
    plugins: [adminRoute(backends[0]!.id!), roundRobin()],
    timeouts: { drain: 5000 },
  });
}

// Run directly: `node dist/proxy.js ws://127.0.0.1:9001 ws://127.0.0.1:9002`
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const urls = process.argv.slice(2);
  if (urls.length === 0) {
    console.error('usage: node dist/proxy.js BACKEND_URL...');
    process.exit(2);
  }
  const proxy = buildProxy(urls.map((url, i) => ({ id: `b${i + 1}`, url })));
  await proxy.listen();
  const stop = (): void => {
    proxy.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
