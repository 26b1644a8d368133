import type { ProxyConfig } from './config.js';
import type { PluginHooks } from './hooks.js';
import type { Proxy } from './proxy.js';

/**
 * A wslb plugin: a name and an `apply` that taps the proxy's hooks. A plugin package
 * default-exports a factory `(options) => Plugin` and exports `schema` (JSON Schema of options).
 */
export interface Plugin {
  /** Unique among the plugins of a proxy; by convention the package name without its scope. */
  readonly name: string;
  /** Taps hooks; may be async (resolved before the proxy listens). */
  apply(proxy: PluginHost): void | Promise<void>;
  /** Names of plugins that must be registered on the same proxy too (in any order). */
  readonly dependencies?: readonly string[];
  /** semver range of @wslb/core this plugin works with, e.g. "^0.1.0". */
  readonly core?: string;
  /** Called by `proxy.reload()` with the plugin's new options. */
  reconfigure?(options: unknown): void | Promise<void>;
  /** Called once when the proxy closes: stop timers, close sockets the plugin opened. */
  close?(): void | Promise<void>;
  /** Marks a balancer, so the core knows not to add the default round-robin. */
  readonly balancer?: boolean;
}

/** A problem `checkConfig` found: a sentence, or one with the JSON path of the option inside the options. */
export type PluginConfigProblem = string | { readonly path: string; readonly message: string };

/**
 * Checks a plugin's options for rules a JSON Schema cannot state: against the rest of the config
 * (an option required with several workers) or between values (a range whose ends are swapped).
 * Returns the problems; none means fine. Runs before the proxy starts, before a reload and for
 * `wslb --check`, so each is a config error (exit 2) at `/plugins/<i>/options` + its `path`.
 */
export type PluginConfigCheck = (
  options: never,
  config: Readonly<ProxyConfig>,
) => readonly PluginConfigProblem[];

/** A plugin package's default export. */
export type PluginFactory<O = Record<string, unknown>> = ((options?: O) => Plugin) & {
  schema?: object;
  checkConfig?: PluginConfigCheck;
};

/** A plugin module as imported. */
export interface PluginModule {
  default?: PluginFactory<never> | Plugin;
  schema?: object;
  checkConfig?: PluginConfigCheck;
}

/** What a plugin's apply() receives: the proxy, with hooks exposing tap methods only. */
export type PluginHost = Pick<Proxy, 'pool' | 'log' | 'config' | 'version' | 'plugins' | 'role'> & {
  readonly hooks: PluginHooks;
};

export function isPlugin(value: unknown): value is Plugin {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Plugin).name === 'string' &&
    (value as Plugin).name.length > 0 &&
    typeof (value as Plugin).apply === 'function'
  );
}
