import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AdminConfig, type Proxy, WslbError, createProxy } from '@wslb/core';
import type { AdminServer } from './admin/server.js';
import { USAGE, UsageError, parseArgs } from './args.js';
import { isClusterWorker, workerCount } from './cluster-role.js';
import { ConfigError, checkConfigPlugins, loadConfig } from './load-config.js';
import { fullSchema } from './print-schema.js';
import { handleSignals } from './signals.js';
import { CLI_VERSION } from './version.js';

/** The binary's own folder: built-in plugins resolve from here whatever the config's folder. */
export const CLI_DIR = dirname(fileURLToPath(import.meta.url));

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_CONFIG = 2;

/** Faults of the config's plugin set: fixed by editing the config (or installing), so exit 2. */
const CONFIG_FAULTS = new Set([
  'WSLB_ERR_CONFIG_INVALID',
  'WSLB_ERR_PLUGIN_NOT_FOUND',
  'WSLB_ERR_PLUGIN_INVALID',
  'WSLB_ERR_PLUGIN_DUPLICATE',
  'WSLB_ERR_PLUGIN_DEPENDENCY',
  'WSLB_ERR_PLUGIN_CORE_VERSION',
]);

function printStartError(err: unknown): number {
  if (!(err instanceof WslbError)) {
    process.stderr.write(`wslb: ${(err as Error).message}\n`);
    return EXIT_RUNTIME;
  }
  process.stderr.write(`wslb: ${err.code}: ${err.message}\n`);
  return CONFIG_FAULTS.has(err.code) ? EXIT_CONFIG : EXIT_RUNTIME;
}

function printConfigError(err: ConfigError): void {
  process.stderr.write(`wslb: ${err.code}: ${err.message}\n`);
  for (const issue of err.issues) process.stderr.write(`  ${issue.path}: ${issue.message}\n`);
}

/** Runs the binary; resolves with the exit code once the proxy has stopped (or at once). */
export async function main(argv: readonly string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`wslb: ${err.message}\n\n${USAGE}\n`);
    return EXIT_CONFIG;
  }
  if (args.help) {
    process.stdout.write(`wslb ${CLI_VERSION}: a WebSocket load balancer you can program\n\n${USAGE}\n`);
    return EXIT_OK;
  }
  if (args.version) {
    process.stdout.write(`${CLI_VERSION}\n`);
    return EXIT_OK;
  }
  if (args.printSchema) {
    process.stdout.write(`${JSON.stringify(await fullSchema(CLI_DIR), null, 2)}\n`);
    return EXIT_OK;
  }

  let loaded;
  try {
    loaded = await loadConfig(args.config, [CLI_DIR]);
  } catch (err) {
    if (err instanceof ConfigError) {
      printConfigError(err);
      return EXIT_CONFIG;
    }
    throw err;
  }
  if (args.check) {
    try {
      await checkConfigPlugins(loaded.config, [CLI_DIR]);
    } catch (err) {
      return printStartError(err);
    }
    process.stdout.write(`${loaded.file}: ok\n`);
    return EXIT_OK;
  }

  const isWorker = await isClusterWorker();
  const workers = workerCount(loaded.config.workers);
  const role = isWorker ? 'worker' : workers > 1 ? 'primary' : 'single';
  // With an admin API, metrics are tapped before the plugins start: the first health checks count.
  const metrics = role !== 'worker' && loaded.config.admin ? await loadMetrics() : undefined;
  let proxy: Proxy;
  try {
    proxy = createProxy(loaded.config, { pluginPaths: [CLI_DIR], role });
    metrics?.proxyMetrics(proxy);
    await proxy.ready();
  } catch (err) {
    return printStartError(err);
  }
  if (role === 'primary') return runPrimary(proxy, args.config, workers, argv);
  return run(proxy, args.config, role === 'worker');
}

/**
 * The admin API and its metrics (prom-client) load only where they run: a single process without
 * `admin` keeps their ~1 MiB of heap out of the collector's way on the data path.
 */
function loadMetrics(): Promise<typeof import('./admin/metrics.js')> {
  return import('./admin/metrics.js');
}

/** Logs faults that escaped a handler: one faulty connection or plugin must not take the others down. */
function logUncaught(proxy: Proxy): void {
  const log = proxy.log;
  process.on('uncaughtException', (err) => {
    log.error({ err, code: 'WSLB_ERR_UNCAUGHT' }, 'uncaught exception');
  });
  process.on('unhandledRejection', (err) => {
    log.error({ err, code: 'WSLB_ERR_UNCAUGHT' }, 'unhandled rejection');
  });
}

/** `workers: N`: the control plane here, traffic in N worker processes on the same port. */
async function runPrimary(
  control: Proxy,
  configPath: string,
  count: number,
  argv: readonly string[],
): Promise<number> {
  const log = control.log;
  logUncaught(control);
  // node:cluster and the IPC code load only in processes of a cluster.
  const { ClusterPrimary } = await import('./cluster.js');
  const primary = new ClusterPrimary(control, count, argv);
  const { useClusterMetrics } = await loadMetrics();
  useClusterMetrics(control, () => primary.workerMetrics());
  // The admin API lives with the control plane: health states and the workers' summed counters.
  // /status asks the workers for their counters first, so it is current rather than a second old.
  const admin = new AdminHolder(control, () => primary.refreshStats());
  const signals = handleSignals({
    log,
    stopMessage: 'stopping workers',
    stop: async () => {
      // The control plane is shutting down from now on: /healthz answers 503 while workers drain.
      const closing = control.close({ drain: 0 });
      await primary.stop();
      await admin.apply(undefined);
      await closing;
    },
    kill: () => primary.kill(),
    reload: async () => {
      if (!(await reloadFromFile(control, configPath))) return;
      primary.reloadWorkers();
      await admin.apply(control.config.admin);
    },
  });

  primary.start();
  log.info({ workers: count }, 'primary started');
  try {
    await admin.apply(control.config.admin);
  } catch (err) {
    signals.started(false);
    log.fatal(
      { err: (err as Error).message, code: (err as WslbError).code },
      'cannot start the admin listener',
    );
    printStartError(err);
    await primary.stop();
    await control.close({ drain: 0 });
    return EXIT_RUNTIME;
  }
  signals.started(true);
  return signals.exitCode;
}

async function run(proxy: Proxy, configPath: string, isWorker: boolean): Promise<number> {
  const log = proxy.log;
  logUncaught(proxy);
  // Workers serve traffic only; the admin API runs in the primary.
  const admin = new AdminHolder(proxy);
  let cluster: { reloaded(): void } | undefined;
  const signals = handleSignals({
    log,
    stopMessage: 'stopping',
    worker: isWorker,
    // The admin listener stays up while tunnels drain (/healthz answers 503 meanwhile).
    stop: () => proxy.close(),
    reload: async () => {
      if (!(await reloadFromFile(proxy, configPath))) return;
      if (isWorker) cluster?.reloaded();
      else await admin.apply(proxy.config.admin);
    },
  });

  let addresses;
  try {
    addresses = await proxy.listen();
    if (!isWorker) await admin.apply(proxy.config.admin);
  } catch (err) {
    signals.started(false);
    log.fatal({ err: (err as Error).message, code: (err as WslbError).code }, 'cannot start');
    printStartError(err);
    await proxy.close({ drain: 0 });
    await admin.apply(undefined);
    return EXIT_RUNTIME;
  }
  signals.started(true);
  if (isWorker) {
    // Counting starts now; the primary asks for these when /metrics is scraped.
    const { proxyMetrics } = await loadMetrics();
    const metrics = proxyMetrics(proxy);
    const { joinCluster } = await import('./cluster.js');
    cluster = joinCluster(proxy, addresses[0]?.port ?? 0, () => metrics.registry.getMetricsAsJSON());
    // Without its primary a worker has no control plane: drain and go.
    process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  }
  const code = await signals.exitCode;
  await admin.apply(undefined);
  return code;
}

/** The admin listener of the binary: started with the proxy, restarted when a reload changes it. */
class AdminHolder {
  readonly #proxy: Proxy;
  readonly #refresh: (() => Promise<unknown>) | undefined;
  #server: AdminServer | undefined;
  #config = '';

  constructor(proxy: Proxy, refresh?: () => Promise<unknown>) {
    this.#proxy = proxy;
    this.#refresh = refresh;
  }

  async apply(config: AdminConfig | undefined): Promise<void> {
    const next = config ? JSON.stringify(config) : '';
    if (next === this.#config) return;
    const previous = this.#server;
    this.#server = undefined;
    this.#config = '';
    await previous?.close();
    if (!config) return;
    const { startAdminServer } = await import('./admin/server.js');
    this.#server = await startAdminServer(this.#proxy, config, this.#refresh);
    this.#config = next;
  }
}

/** SIGHUP: an invalid file is reported and the running config stays. Resolves true when applied. */
async function reloadFromFile(proxy: Proxy, configPath: string): Promise<boolean> {
  const log = proxy.log;
  let loaded;
  try {
    loaded = await loadConfig(configPath, [CLI_DIR]);
  } catch (err) {
    if (err instanceof ConfigError) {
      log.error(
        { code: 'WSLB_ERR_CONFIG_INVALID', issues: err.issues.map((i) => `${i.path}: ${i.message}`) },
        `reload rejected, keeping the running config: ${err.message}`,
      );
      return false;
    }
    throw err;
  }
  try {
    await proxy.reload(loaded.config);
    return true;
  } catch (err) {
    log.error(
      { code: (err as WslbError).code, err: (err as Error).message },
      'reload rejected, keeping the running config',
    );
    return false;
  }
}
