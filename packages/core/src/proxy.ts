import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import semver from 'semver';
import {
  type ListenConfig,
  type PluginEntry,
  type ProxyConfig,
  DEFAULT_RETRIES,
  listenList,
  resolveLimits,
  resolveTimeouts,
} from './config.js';
import { Engine, type EngineSettings } from './engine.js';
import { WslbError } from './errors.js';
import { TrustedProxies } from './forwarded.js';
import { createHooks, type PluginHooks, type ProxyHooks, STAGE_BALANCE } from './hooks.js';
import { type Listener, createListener } from './listener.js';
import { createLogger } from './logger.js';
import { isPlugin, type Plugin, type PluginModule } from './plugin.js';
import { type AnyHook, setHookGuard } from './plugin-hooks.js';
import { loadPluginModule, pluginEntry } from './plugin-loader.js';
import { BackendPool } from './pool.js';
import { formatIssueList, validateConfig, validatePluginOptions } from './validate.js';
import { CORE_VERSION } from './version.js';

export interface BoundAddress {
  host: string;
  port: number;
  family: string;
  secure: boolean;
}

export interface CreateProxyOptions {
  /** A pino logger to use instead of a new one on stdout. */
  logger?: Logger;
  /** More folders to resolve plugin names from, after the config's `pluginBase`. */
  pluginPaths?: readonly string[];
}

export interface CloseOptions {
  /** How long live tunnels may take to finish before they are closed (default `timeouts.drain`). */
  drain?: number;
}

interface RegisteredPlugin {
  plugin: Plugin;
  /** The `use` string it was loaded by (for reload), or its name when given as an object. */
  use: string;
  active: boolean;
  /** Added because no balancer was configured. */
  implicit: boolean;
}

function settingsOf(config: ProxyConfig): EngineSettings {
  const access = config.log?.access ?? true;
  return {
    timeouts: resolveTimeouts(config.timeouts),
    limits: resolveLimits(config.limits),
    retries: config.retries ?? DEFAULT_RETRIES,
    trusted: new TrustedProxies(config.trustedProxies),
    accessLog: access === true ? 1 : access === false ? 0 : access,
  };
}

/** The plugin specs that are config data (names and `{use}` entries), for schema validation. */
function dataOnly(config: ProxyConfig): ProxyConfig {
  const { pluginBase: _base, ...rest } = config;
  return { ...rest, plugins: (config.plugins ?? []).filter((p) => !isPlugin(p)) as PluginEntry[] };
}

/**
 * Makes a plugin from its module: validates `entry.options` against the module's `schema` (issues
 * name `/plugins/<index>/options/...`), then calls the default-exported factory.
 */
export async function instantiatePlugin(
  mod: PluginModule,
  entry: PluginEntry,
  index: number,
): Promise<Plugin> {
  const exported = mod.default;
  const schema = mod.schema ?? (typeof exported === 'function' ? exported.schema : undefined);
  if (schema) {
    const issues = validatePluginOptions(schema, entry.options ?? {}, `/plugins/${index}/options`);
    if (issues.length > 0) {
      throw new WslbError('WSLB_ERR_CONFIG_INVALID', formatIssueList(issues));
    }
  }
  const plugin =
    typeof exported === 'function' ? (exported as (o: unknown) => unknown)(entry.options ?? {}) : exported;
  if (!isPlugin(plugin)) {
    throw new WslbError(
      'WSLB_ERR_PLUGIN_INVALID',
      `plugin "${entry.use}" must default-export a factory returning { name, apply }`,
    );
  }
  return plugin;
}

/**
 * Registration checks: unique names, each declared dependency among the plugins (or among
 * `registered`, the names already on the proxy), a compatible @wslb/core. Throws the first fault.
 */
export function checkPlugins(plugins: readonly Plugin[], registered: readonly string[] = []): void {
  const names = new Set(registered);
  for (const plugin of plugins) {
    if (names.has(plugin.name)) {
      throw new WslbError('WSLB_ERR_PLUGIN_DUPLICATE', `plugin "${plugin.name}" is registered twice`);
    }
    names.add(plugin.name);
    if (plugin.core && !semver.satisfies(CORE_VERSION, plugin.core, { includePrerelease: true })) {
      throw new WslbError(
        'WSLB_ERR_PLUGIN_CORE_VERSION',
        `plugin "${plugin.name}" requires @wslb/core ${plugin.core}, this is ${CORE_VERSION}`,
      );
    }
  }
  for (const plugin of plugins) {
    for (const dep of plugin.dependencies ?? []) {
      if (!names.has(dep)) {
        throw new WslbError(
          'WSLB_ERR_PLUGIN_DEPENDENCY',
          `plugin "${plugin.name}" needs plugin "${dep}", which is not registered`,
        );
      }
    }
  }
}

/**
 * A programmable WebSocket load balancer. Hooks are created once and frozen; plugins tap them.
 */
export class Proxy {
  readonly hooks: ProxyHooks;
  readonly pool: BackendPool;
  readonly log: Logger;
  readonly version = CORE_VERSION;
  config: Readonly<ProxyConfig>;
  readonly #engine: Engine;
  readonly #registered: RegisteredPlugin[] = [];
  #listeners: Listener[] = [];
  #ready: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #startedAt = Date.now();
  readonly #pluginPaths: readonly string[];
  /** The plugin whose apply() runs now: taps registered meanwhile are its own. */
  #applying: RegisteredPlugin | undefined;

  constructor(config: ProxyConfig, options: CreateProxyOptions = {}) {
    const issues = validateConfig(dataOnly(config));
    if (issues.length > 0) {
      throw new WslbError('WSLB_ERR_CONFIG_INVALID', `invalid config:\n${formatIssueList(issues)}`);
    }
    this.config = config;
    this.#pluginPaths = options.pluginPaths ?? [];
    this.log = options.logger ?? createLogger(config.log);
    this.hooks = createHooks();
    this.pool = new BackendPool(this.hooks, config.backends);
    this.#engine = new Engine(this.hooks, this.pool, this.log, settingsOf(config));
    for (const hook of Object.values(this.hooks)) this.#guardTaps(hook as AnyHook);
    setHookGuard(this, (hooks) => hooks.forEach((hook) => this.#guardTaps(hook)));
    this.hooks.backendState.tap('wslb:log', (backend, previous, reason) => {
      this.log.info({ backend: backend.id, state: backend.state, previous, reason }, 'backend state changed');
    });
  }

  /** Plugins registered on this proxy, in order. */
  get plugins(): readonly Plugin[] {
    return this.#registered.filter((r) => r.active).map((r) => r.plugin);
  }

  /** Live connections and totals, for status pages. */
  get connections(): { active: number; total: number } {
    return { active: this.#engine.active, total: this.#engine.total };
  }

  get uptime(): number {
    return (Date.now() - this.#startedAt) / 1000;
  }

  get shuttingDown(): boolean {
    return this.#engine.shuttingDown;
  }

  /** The proxy as a plugin's apply() sees it. */
  get pluginHost(): { hooks: PluginHooks } & Omit<Proxy, 'hooks'> {
    return this;
  }

  /** Loads plugins named in the config and registers them; the default balancer when none. */
  ready(): Promise<void> {
    return (this.#ready ??= this.#registerAll());
  }

  async #registerAll(): Promise<void> {
    const specs = this.config.plugins ?? [];
    const plugins: Array<{ plugin: Plugin; use: string }> = [];
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]!;
      if (isPlugin(spec)) {
        plugins.push({ plugin: spec, use: spec.name });
        continue;
      }
      const entry = pluginEntry(spec);
      const mod = await loadPluginModule(entry.use, this.#pluginBase(), this.#pluginPaths);
      plugins.push({ plugin: await instantiatePlugin(mod, entry, i), use: entry.use });
    }
    this.#checkPlugins(plugins.map((p) => p.plugin));
    for (const { plugin, use } of plugins) await this.#apply(plugin, use);
    await this.#ensureBalancer();
  }

  /** With no balancing plugin, round-robin; an implicit one steps aside when a balancer arrives. */
  async #ensureBalancer(): Promise<void> {
    const implicit = this.#registered.find((r) => r.implicit && r.active);
    if (implicit) {
      implicit.active = false;
      if (this.#hasBalancer()) return;
      implicit.active = true;
      return;
    }
    if (this.#hasBalancer()) return;
    const mod = await loadPluginModule('round-robin', this.#pluginBase(), this.#pluginPaths);
    await this.#apply(await instantiatePlugin(mod, { use: 'round-robin' }, 0), 'round-robin', true);
  }

  #pluginBase(): string {
    return this.config.pluginBase ?? (process.argv[1] ? dirname(process.argv[1]) : process.cwd());
  }

  #hasBalancer(): boolean {
    const active = this.#registered.filter((r) => r.active);
    if (active.some((r) => r.plugin.balancer === true)) return true;
    // A plugin that taps select at the balance stage balances, whether it says so or not.
    const names = new Set(active.map((r) => r.plugin.name));
    return this.hooks.select.taps.some((t) => (t.stage ?? 0) >= STAGE_BALANCE && names.has(t.name));
  }

  /** Registration checks against the plugins already registered. */
  #checkPlugins(plugins: readonly Plugin[]): void {
    checkPlugins(
      plugins,
      this.#registered.filter((r) => r.active).map((r) => r.plugin.name),
    );
  }

  async #apply(plugin: Plugin, use: string, implicit = false): Promise<void> {
    const record: RegisteredPlugin = { plugin, use, active: true, implicit };
    this.#applying = record;
    const limit = this.#engine.settings.timeouts.plugin;
    let timer: NodeJS.Timeout | undefined;
    try {
      const applied = plugin.apply(this);
      if (applied && limit > 0) {
        await Promise.race([
          applied,
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () =>
                reject(
                  new WslbError(
                    'WSLB_ERR_PLUGIN_TIMEOUT',
                    `plugin "${plugin.name}" did not finish apply() within ${limit} ms`,
                  ),
                ),
              limit,
            );
          }),
        ]);
      } else {
        await applied;
      }
    } catch (err) {
      // Whatever it tapped before failing stays inert.
      record.active = false;
      throw err;
    } finally {
      clearTimeout(timer);
      this.#applying = undefined;
    }
    this.#registered.push(record);
  }

  /**
   * One interceptor per hook, added once (tapable runs `register` over the taps a hook already
   * has when an interceptor is added): a tap registered while a plugin applies is wrapped so that
   * it becomes a no-op once a reload removes that plugin (tapable cannot untap).
   */
  #guardTaps(hook: AnyHook): void {
    (hook as ProxyHooks[keyof ProxyHooks]).intercept({
      register: (tap) => {
        const record = this.#applying;
        if (!record) return tap;
        const fn = tap.fn as (...args: unknown[]) => unknown;
        if (tap.type === 'sync') tap.fn = (...args: unknown[]) => (record.active ? fn(...args) : undefined);
        else if (tap.type === 'promise')
          tap.fn = (...args: unknown[]) => (record.active ? fn(...args) : Promise.resolve(undefined));
        else
          tap.fn = (...args: unknown[]) => {
            if (record.active) return fn(...args);
            (args[args.length - 1] as (err?: unknown, result?: unknown) => void)();
          };
        return tap;
      },
    });
  }

  /** Starts every listener; resolves with the bound addresses (port 0 gets a free port). */
  async listen(): Promise<BoundAddress[]> {
    await this.ready();
    if (this.#listeners.length > 0) return this.addresses();
    const configs = listenList(this.config.listen);
    const started: Listener[] = [];
    try {
      for (const config of configs) started.push(await this.#startListener(config));
    } catch (err) {
      for (const l of started) l.server.close();
      throw err;
    }
    this.#listeners = started;
    return this.addresses();
  }

  async #startListener(config: ListenConfig): Promise<Listener> {
    const listener = createListener(this.#engine, config, this.config.pluginBase ?? process.cwd());
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(
          new WslbError(
            'WSLB_ERR_LISTEN',
            `cannot listen on ${config.host ?? '0.0.0.0'}:${config.port}: ${err.message}`,
            { cause: err },
          ),
        );
      };
      listener.server.once('error', onError);
      listener.server.listen(config.port, config.host ?? '0.0.0.0', () => {
        listener.server.off('error', onError);
        resolve();
      });
    });
    listener.server.on('error', (err) => this.log.error({ err: err.message }, 'listener error'));
    const address = listener.server.address() as AddressInfo;
    this.log.info({ address: address.address, port: address.port, tls: listener.secure }, 'listening');
    return listener;
  }

  addresses(): BoundAddress[] {
    return this.#listeners.map((l) => {
      const a = l.server.address() as AddressInfo;
      return { host: a.address, port: a.port, family: a.family, secure: l.secure };
    });
  }

  /**
   * Stops accepting, answers new requests 503, lets live tunnels finish up to the drain deadline,
   * then closes what is left. Plugins' close() runs last.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return (this.#closing ??= this.#close(options.drain ?? this.#engine.settings.timeouts.drain));
  }

  async #close(drainMs: number): Promise<void> {
    const engine = this.#engine;
    engine.shuttingDown = true;
    const closed = this.#listeners.map(
      (l) => new Promise<void>((resolve) => l.server.close(() => resolve())),
    );
    for (const l of this.#listeners) l.server.closeIdleConnections();
    if (engine.active > 0) {
      this.log.info({ active: engine.active, drainMs }, 'draining');
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, drainMs);
      });
      await Promise.race([engine.whenIdle(), deadline]);
      clearTimeout(timer);
    }
    for (const tunnel of [...engine.tunnels]) tunnel.finish('drain', undefined);
    for (const l of this.#listeners) l.server.closeAllConnections();
    await Promise.all(closed);
    for (const backend of this.pool.list()) engine.destroyAgent(backend);
    for (const { plugin } of this.#registered) {
      try {
        await plugin.close?.();
      } catch (err) {
        this.log.error({ plugin: plugin.name, err: (err as Error).message }, 'plugin close failed');
      }
    }
    this.log.info('closed');
  }

  /**
   * Applies a new config without dropping live tunnels: backends are added, removed (their
   * tunnels stay) or reconfigured in place; plugins get reconfigure(options); listeners that
   * changed are replaced. An invalid config throws and leaves the running one untouched.
   */
  async reload(next: ProxyConfig): Promise<void> {
    const issues = validateConfig(dataOnly(next));
    if (issues.length > 0) {
      throw new WslbError('WSLB_ERR_CONFIG_INVALID', `invalid config:\n${formatIssueList(issues)}`);
    }
    // Resolve and validate every plugin before changing anything.
    const wanted: Array<{
      use: string;
      plugin?: Plugin;
      options?: Record<string, unknown>;
      mod?: PluginModule;
      index: number;
    }> = [];
    const specs = next.plugins ?? [];
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]!;
      if (isPlugin(spec)) {
        wanted.push({ use: spec.name, plugin: spec, index: i });
        continue;
      }
      const entry = pluginEntry(spec);
      const mod = await loadPluginModule(entry.use, next.pluginBase ?? this.#pluginBase(), this.#pluginPaths);
      const schema = mod.schema ?? (typeof mod.default === 'function' ? mod.default.schema : undefined);
      if (schema) {
        const pluginIssues = validatePluginOptions(schema, entry.options ?? {}, `/plugins/${i}/options`);
        if (pluginIssues.length > 0)
          throw new WslbError('WSLB_ERR_CONFIG_INVALID', formatIssueList(pluginIssues));
      }
      wanted.push({ use: entry.use, options: entry.options ?? {}, mod, index: i });
    }
    // Match each wanted plugin to a running one (kept, reconfigured) or a new instance, and check
    // the resulting set as a whole (names, dependencies, core range) before anything changes.
    const keep = new Set<RegisteredPlugin>();
    const plan: Array<{ existing?: RegisteredPlugin; plugin: Plugin; use: string; options?: unknown }> = [];
    for (const w of wanted) {
      const existing = this.#registered.find(
        (r) =>
          r.active && !r.implicit && !keep.has(r) && (w.plugin ? r.plugin === w.plugin : r.use === w.use),
      );
      if (existing) {
        keep.add(existing);
        plan.push({ existing, plugin: existing.plugin, use: w.use, options: w.options });
        continue;
      }
      const plugin =
        w.plugin ?? (await instantiatePlugin(w.mod!, { use: w.use, options: w.options }, w.index));
      plan.push({ plugin, use: w.use });
    }
    checkPlugins(plan.map((step) => step.plugin));

    const oldListen = JSON.stringify(listenList(this.config.listen));
    this.config = next;
    this.#engine.settings = settingsOf(next);
    const { removed } = this.pool.update(next.backends);
    for (const b of removed) {
      this.log.info({ backend: b.id, active: b.active }, 'backend removed by reload');
      this.#engine.destroyAgent(b);
    }

    for (const step of plan) {
      if (step.existing) {
        if (step.options !== undefined) await step.existing.plugin.reconfigure?.(step.options);
        continue;
      }
      await this.#apply(step.plugin, step.use);
      keep.add(this.#registered[this.#registered.length - 1]!);
    }
    for (const r of this.#registered) {
      if (r.active && !r.implicit && !keep.has(r)) {
        r.active = false;
        await r.plugin.close?.();
        this.log.info({ plugin: r.plugin.name }, 'plugin removed by reload');
      }
    }
    await this.#ensureBalancer();

    if (this.#listeners.length > 0 && JSON.stringify(listenList(next.listen)) !== oldListen) {
      const previous = this.#listeners;
      const started: Listener[] = [];
      try {
        for (const config of listenList(next.listen)) {
          const same = previous.find((l) => JSON.stringify(l.config) === JSON.stringify(config) && !l.secure);
          started.push(same ?? (await this.#startListener(config)));
        }
      } catch (err) {
        for (const l of started) if (!previous.includes(l)) l.server.close();
        throw err;
      }
      // Old listeners stop accepting; the sockets they accepted stay until they end.
      for (const l of previous) if (!started.includes(l)) l.server.close();
      this.#listeners = started;
    }
    this.log.info({ backends: this.pool.size, plugins: this.plugins.map((p) => p.name) }, 'reloaded');
  }
}

/** Builds a proxy from the same object as the JSON config (plugins as objects or names). */
export function createProxy(config: ProxyConfig, options?: CreateProxyOptions): Proxy {
  return new Proxy(config, options);
}
