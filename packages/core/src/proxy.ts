import { type AddressInfo, Server as NetServer } from 'node:net';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import type { Logger } from 'pino';
// The one function used: the whole package would be 0.4 MiB of heap, this is 0.26.
import {
  type BackendConfig,
  type ListenConfig,
  type PluginEntry,
  type ProxyConfig,
  DEFAULT_RETRIES,
  listenList,
  resolveLimits,
  resolveTimeouts,
} from './config.js';
import type { ConnectionContext } from './context.js';
import { Engine, type EngineSettings } from './engine.js';
import { WslbError } from './errors.js';
import { TrustedProxies } from './forwarded.js';
import { createHooks, type PluginHooks, type ProxyHooks, STAGE_BALANCE } from './hooks.js';
import { type Listener, createListener, httpServerOf } from './listener.js';
import { createLogger } from './logger.js';
import { isPlugin, type Plugin, type PluginConfigCheck, type PluginModule } from './plugin.js';
import { type AnyHook, setHookGuard } from './plugin-hooks.js';
import { loadPluginModule, pluginEntry } from './plugin-loader.js';
import { BackendPool } from './pool.js';
import { ROUND_ROBIN, roundRobin } from './round-robin.js';
import { type ConfigIssue, formatIssueList, validateConfig, validatePluginOptions } from './validate.js';
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
  /**
   * With several worker processes: `"primary"` holds the control plane (health checks, admin)
   * and does not serve traffic; `"worker"` serves traffic and takes backend states from the
   * primary. Plugins read it as `proxy.role` (default `"single"`).
   */
  role?: ProxyRole;
}

export type ProxyRole = 'single' | 'primary' | 'worker';

/** Counters one process reports (or a primary sums) for status pages. */
export interface ClusterStats {
  connections: { active: number; total: number };
  backends: Array<{ id: string; active: number; total: number; failures: number }>;
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

/**
 * A backend's `tls.ca` in a config file names a PEM file (relative to the config's folder); in
 * code it may also be the PEM text or a Buffer. Files are read here, once per (re)load.
 */
function withCaFiles(backends: readonly BackendConfig[], base: string | undefined): BackendConfig[] {
  return backends.map((b, i) => {
    const ca = b.tls?.ca;
    if (typeof ca !== 'string' || ca.includes('-----BEGIN')) return b;
    try {
      return {
        ...b,
        tls: { ...b.tls, ca: readFileSync(isAbsolute(ca) ? ca : resolvePath(base ?? process.cwd(), ca)) },
      };
    } catch (err) {
      throw new WslbError(
        'WSLB_ERR_CONFIG_INVALID',
        `/backends/${i}/tls/ca: cannot read CA file of backend ${b.id ?? b.url}: ${(err as Error).message}`,
      );
    }
  });
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
/** The `checkConfig` of a plugin module (named export, or a property of its factory). */
function configCheckOf(mod: PluginModule): PluginConfigCheck | undefined {
  return mod.checkConfig ?? (typeof mod.default === 'function' ? mod.default.checkConfig : undefined);
}

/**
 * What a plugin module finds wrong with its options in `config` (its `checkConfig`), as issues
 * at `/plugins/<index>/options`.
 */
export function pluginConfigIssues(
  mod: PluginModule,
  options: unknown,
  index: number,
  config: Readonly<ProxyConfig>,
): ConfigIssue[] {
  const check = configCheckOf(mod);
  if (!check) return [];
  const path = `/plugins/${index}/options`;
  try {
    return check(options as never, config).map((problem) =>
      typeof problem === 'string'
        ? { path, message: problem }
        : { path: `${path}${problem.path}`, message: problem.message },
    );
  } catch (err) {
    return [{ path, message: (err as Error).message }];
  }
}

/**
 * Makes a plugin from its module: options checked against the module's schema (and, with
 * `config`, its `checkConfig`), then the factory called. A factory that throws refuses its
 * options, so that is a config error naming them too.
 */
export async function instantiatePlugin(
  mod: PluginModule,
  entry: PluginEntry,
  index: number,
  config?: Readonly<ProxyConfig>,
): Promise<Plugin> {
  const exported = mod.default;
  const schema = mod.schema ?? (typeof exported === 'function' ? exported.schema : undefined);
  const options = entry.options ?? {};
  const issues = schema ? validatePluginOptions(schema, options, `/plugins/${index}/options`) : [];
  if (issues.length === 0 && config) issues.push(...pluginConfigIssues(mod, options, index, config));
  if (issues.length > 0) throw new WslbError('WSLB_ERR_CONFIG_INVALID', formatIssueList(issues));
  let plugin: unknown = exported;
  if (typeof exported === 'function') {
    try {
      plugin = (exported as (o: unknown) => unknown)(options);
    } catch (err) {
      if (err instanceof WslbError && err.code !== 'WSLB_ERR_CONFIG_INVALID') throw err;
      throw new WslbError(
        'WSLB_ERR_CONFIG_INVALID',
        `/plugins/${index}/options: ${entry.use}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  if (!isPlugin(plugin)) {
    throw new WslbError(
      'WSLB_ERR_PLUGIN_INVALID',
      `plugin "${entry.use}" must default-export a factory returning { name, apply }`,
    );
  }
  return plugin;
}

/** Where semver and its parts live; their require-cache entries go once a range is checked. */
const SEMVER_FILES = /[\\/]node_modules[\\/]semver[\\/]/;

/**
 * Whether this core is in a plugin's `core` range. semver is loaded for the check and let go
 * right after: its regular expressions would be ~0.3 MiB of the proxy's heap for its whole life
 * (see validate.ts for why that heap matters), for ranges checked only when plugins register.
 */
function coreSatisfies(range: string): boolean {
  const load = createRequire(import.meta.url);
  try {
    const satisfies = load('semver/functions/satisfies.js') as typeof import('semver/functions/satisfies.js');
    return satisfies(CORE_VERSION, range, { includePrerelease: true });
  } finally {
    for (const file of Object.keys(load.cache)) if (SEMVER_FILES.test(file)) delete load.cache[file];
  }
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
    if (plugin.core && !coreSatisfies(plugin.core)) {
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
  readonly role: ProxyRole;
  config: Readonly<ProxyConfig>;
  readonly #engine: Engine;
  readonly #registered: RegisteredPlugin[] = [];
  #listeners: Listener[] = [];
  /** Listeners a reload replaced: closed for new connections, kept to close their old ones on stop. */
  #retiredListeners: Listener[] = [];
  readonly #removalTimers = new Set<NodeJS.Timeout>();
  #clusterConnections: { active: number; total: number } | undefined;
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
    this.role = options.role ?? 'single';
    this.log = options.logger ?? createLogger(config.log);
    this.hooks = createHooks();
    this.pool = new BackendPool(this.hooks, withCaFiles(config.backends, config.pluginBase));
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

  /** Live connections and totals, for status pages (the sum over workers on a primary). */
  get connections(): { active: number; total: number } {
    return this.#clusterConnections ?? { active: this.#engine.active, total: this.#engine.total };
  }

  /**
   * On a primary: the counters its workers reported, summed, so that status pages and metrics
   * read the whole. Backends take their summed active/total/failures.
   */
  applyClusterStats(stats: ClusterStats): void {
    this.#clusterConnections = stats.connections;
    for (const entry of stats.backends) {
      const backend = this.pool.get(entry.id);
      if (!backend) continue;
      backend.active = entry.active;
      backend.total = entry.total;
      backend.failures = entry.failures;
    }
  }

  /** This process's own counters, as a worker reports them to its primary. */
  localStats(): ClusterStats {
    return {
      connections: { active: this.#engine.active, total: this.#engine.total },
      backends: this.pool
        .list()
        .map((b) => ({ id: b.id, active: b.active, total: b.total, failures: b.failures })),
    };
  }

  /**
   * Live tunnels with the bytes they moved so far (client to backend, backend to client), read
   * from socket counters on demand so that metrics cost nothing per chunk.
   */
  liveTunnels(): Array<{ ctx: ConnectionContext; bytesIn: number; bytesOut: number }> {
    const list = [];
    for (const t of this.#engine.tunnels) {
      list.push({ ctx: t.ctx, bytesIn: t.client.bytesRead, bytesOut: t.client.bytesWritten });
    }
    return list;
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
      plugins.push({ plugin: await instantiatePlugin(mod, entry, i, this.config), use: entry.use });
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
    await this.#apply(roundRobin(), ROUND_ROBIN, true);
  }

  #pluginBase(): string {
    return this.config.pluginBase ?? (process.argv[1] ? dirname(process.argv[1]) : process.cwd());
  }

  /**
   * Keeps listeners whose config is unchanged (re-reading their certificates), closes the others
   * (their open connections stay until they end) and starts the new ones. Runs before anything
   * else of a reload is applied: when a new listener cannot start, the old ones are put back and
   * the reload fails as a whole.
   */
  async #reloadListeners(next: ProxyConfig): Promise<void> {
    const mode = next.mode ?? 'http';
    const modeChanged = mode !== (this.config.mode ?? 'http');
    const kept = new Set<Listener>();
    const toStart: ListenConfig[] = [];
    for (const config of listenList(next.listen)) {
      const same = modeChanged
        ? undefined
        : this.#listeners.find((l) => !kept.has(l) && sameListener(l, config));
      if (same) kept.add(same);
      else toStart.push(config);
    }
    const retired = this.#listeners.filter((l) => !kept.has(l));
    // Closed first, since a changed listener may want the same port; their sockets stay.
    await Promise.all(retired.map((l) => stopAccepting(l)));
    const started: Listener[] = [];
    try {
      for (const config of toStart) started.push(await this.#startListener(config, mode, next.pluginBase));
    } catch (err) {
      await Promise.all(started.map((l) => stopAccepting(l)));
      for (const l of retired) await listenOn(l.server, l.boundPort, l.config.host);
      throw err;
    }
    for (const l of kept) l.reloadTls();
    this.#listeners = [...this.#listeners.filter((l) => kept.has(l)), ...started];
    this.#retiredListeners.push(...retired);
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

  async #startListener(
    config: ListenConfig,
    mode = this.config.mode,
    base = this.config.pluginBase,
  ): Promise<Listener> {
    const listener = createListener(this.#engine, config, base ?? process.cwd(), mode);
    await listenOn(listener.server, config.port, config.host);
    listener.server.on('error', (err) => this.log.error({ err: err.message }, 'listener error'));
    const address = listener.server.address() as AddressInfo;
    listener.boundPort = address.port;
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
    // Stop accepting. http.Server#close would also drop idle keep-alive connections; they stay
    // open instead, so a request on one gets 503 with Connection: close rather than a reset.
    const closed = this.#listeners.map(
      (l) => new Promise<void>((resolve) => NetServer.prototype.close.call(l.server, () => resolve())),
    );
    if (engine.active > 0) {
      this.log.info({ active: engine.active, drainMs }, 'draining');
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, drainMs);
      });
      await Promise.race([engine.whenIdle(), deadline]);
      clearTimeout(timer);
    }
    for (const timer of this.#removalTimers) clearTimeout(timer);
    this.#removalTimers.clear();
    // Past the deadline: WebSockets get a close frame where a frame boundary allows one.
    const tunnelsClosed = [...engine.tunnels].map((tunnel) => {
      tunnel.close('drain');
      return tunnel.whenSocketsClosed();
    });
    for (const l of [...this.#listeners, ...this.#retiredListeners]) httpServerOf(l)?.closeAllConnections();
    await Promise.all([...closed, ...tunnelsClosed]);
    for (const backend of this.pool.list()) engine.destroyAgent(backend);
    for (const { plugin } of this.#registered.filter((r) => r.active)) {
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
      const pluginIssues = schema
        ? validatePluginOptions(schema, entry.options ?? {}, `/plugins/${i}/options`)
        : [];
      if (pluginIssues.length === 0)
        pluginIssues.push(...pluginConfigIssues(mod, entry.options ?? {}, i, next));
      if (pluginIssues.length > 0)
        throw new WslbError('WSLB_ERR_CONFIG_INVALID', formatIssueList(pluginIssues));
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
        w.plugin ?? (await instantiatePlugin(w.mod!, { use: w.use, options: w.options }, w.index, next));
      plan.push({ plugin, use: w.use });
    }
    checkPlugins(plan.map((step) => step.plugin));

    const backends = withCaFiles(next.backends, next.pluginBase ?? this.config.pluginBase);
    if (this.#listeners.length > 0) await this.#reloadListeners(next);
    this.config = next;
    this.#engine.settings = settingsOf(next);
    const { removed } = this.pool.update(backends);
    const grace = this.#engine.settings.timeouts.removedBackend;
    for (const b of removed) {
      this.log.info({ backend: b.id, active: b.active }, 'backend removed by reload');
      this.#engine.destroyAgent(b);
      if (grace > 0 && b.active > 0) {
        // Optional deadline for a removed backend's tunnels; by default they live until they end.
        const timer = setTimeout(() => {
          this.#removalTimers.delete(timer);
          this.#engine.closeTunnelsOf(b, 'removed-backend');
        }, grace);
        this.#removalTimers.add(timer);
      }
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
    this.log.info({ backends: this.pool.size, plugins: this.plugins.map((p) => p.name) }, 'reloaded');
  }
}

function listenOn(server: NetServer, port: number, host = '0.0.0.0'): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(
        new WslbError('WSLB_ERR_LISTEN', `cannot listen on ${host}:${port}: ${err.message}`, { cause: err }),
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * Stops a listener accepting. http.Server#close would also drop idle keep-alive connections;
 * they stay open instead (a request on one during a drain gets 503 with Connection: close).
 */
function stopAccepting(listener: Listener): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!listener.server.listening) return resolve();
    // The callback waits for every open connection; not accepting is what matters here.
    NetServer.prototype.close.call(listener.server);
    setImmediate(resolve);
  });
}

/** Same listener config; `port: 0` in the new one matches whatever port the old one got. */
function sameListener(listener: Listener, config: ListenConfig): boolean {
  const { port: oldPort, ...oldRest } = listener.config;
  const { port, ...rest } = config;
  const portMatches = port === oldPort || port === 0 || port === listener.boundPort;
  return portMatches && JSON.stringify(oldRest) === JSON.stringify(rest);
}

/** Builds a proxy from the same object as the JSON config (plugins as objects or names). */
export function createProxy(config: ProxyConfig, options?: CreateProxyOptions): Proxy {
  return new Proxy(config, options);
}
