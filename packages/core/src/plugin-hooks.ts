import type { TapOnly } from './hooks.js';
import type { PluginHost } from './plugin.js';

/** Any tapable hook (SyncHook, AsyncSeriesHook...), as far as this module needs to know. */
export interface AnyHook {
  isUsed(): boolean;
  intercept(interceptor: never): void;
}

/** How a proxy learns about hooks created for it, so that a reload can disable a removed plugin's taps. */
type HookGuard = (hooks: readonly AnyHook[]) => void;

const guards = new WeakMap<object, HookGuard>();

/** Called by the proxy once: hooks created for it later are handed to `guard`. */
export function setHookGuard(proxy: object, guard: HookGuard): void {
  guards.set(proxy, guard);
}

/**
 * Hooks that a plugin publishes for other plugins: one frozen set per proxy, created on first use
 * (webpack's static `getHooks(compilation)` backed by a WeakMap).
 */
export interface PluginHookSet<H extends Record<keyof H, AnyHook>> {
  /** The hooks of `proxy` with `call`/`promise`: for the plugin that publishes them. */
  of(proxy: PluginHost): Readonly<H>;
  /** The same hooks as other plugins tap them: tap methods only. Export it as `getHooks`. */
  getHooks(proxy: PluginHost): TapOnly<H>;
}

/**
 * Declares a plugin's own hooks. `create` runs once per proxy; its result is frozen. A plugin's
 * taps on these hooks follow the same rule as taps on `proxy.hooks`: once a reload removes the
 * plugin, they become no-ops.
 *
 * Type what a plugin exports with this package's names (`PluginHookSet`, `PluginHost`,
 * `TapOnly`): an inferred type names tapable's files, which the plugin's `.d.ts` cannot (TS2742).
 *
 * ```ts
 * export interface MyHooks { readonly sample: SyncHook<[Backend, number]> }
 * const hooks: PluginHookSet<MyHooks> = createPluginHooks(() => ({
 *   sample: new SyncHook<[Backend, number]>(['backend', 'ms']),
 * }));
 * export const getHooks: (proxy: PluginHost) => TapOnly<MyHooks> = hooks.getHooks;
 * // in apply: hooks.of(proxy).sample.call(backend, ms);
 * ```
 */
export function createPluginHooks<H extends Record<keyof H, AnyHook>>(create: () => H): PluginHookSet<H> {
  const sets = new WeakMap<object, Readonly<H>>();
  const of = (proxy: PluginHost): Readonly<H> => {
    let hooks = sets.get(proxy);
    if (!hooks) {
      hooks = Object.freeze(create());
      sets.set(proxy, hooks);
      guards.get(proxy)?.(Object.values(hooks) as AnyHook[]);
    }
    return hooks;
  };
  return { of, getHooks: of };
}
