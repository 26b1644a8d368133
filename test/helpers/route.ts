import { type Plugin, STAGE_BALANCE } from '@wslb/core';

/**
 * A balancer for tests: the first path segment names the backend (`/faulty/...` goes to the
 * backend with id "faulty"), so one test can aim at a faulty backend while others stay healthy.
 */
export function routeByPath(): Plugin {
  return {
    name: 'route-by-path',
    balancer: true,
    apply(proxy) {
      proxy.hooks.select.tap({ name: 'route-by-path', stage: STAGE_BALANCE }, (ctx, candidates) => {
        const id = (ctx.request?.url ?? '/').split(/[/?]/)[1];
        return candidates.find((b) => b.id === id);
      });
    },
  };
}
