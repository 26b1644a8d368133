import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { processTree } from './proc.js';
import { which } from './install.js';

export const REPO_ROOT = new URL('../../', import.meta.url).pathname;
const BENCH_SRC = new URL('./', import.meta.url).pathname;
export const WSLB_BIN = join(REPO_ROOT, 'packages/cli/bin/wslb.js');
/** A tunnel holds two fds; 9,000 tunnels need 18,000 and the hard limit here is 20,000. */
export const FD_LIMIT = 20_000;

export type TargetKey =
  'direct' | 'wslb' | 'wslb-plugins' | 'nginx' | 'haproxy' | 'http-proxy' | 'node-floor';

export const TARGETS: ReadonlyArray<{ key: TargetKey; label: string }> = [
  { key: 'direct', label: 'direct (no proxy)' },
  { key: 'wslb', label: 'wslb (round-robin)' },
  { key: 'wslb-plugins', label: 'wslb + health-check + sticky + metrics' },
  { key: 'nginx', label: 'nginx' },
  { key: 'haproxy', label: 'HAProxy' },
  { key: 'http-proxy', label: 'node-http-proxy' },
  { key: 'node-floor', label: 'Node floor (blind pipe, no checks)' },
];

export interface RunningTarget {
  key: TargetKey;
  label: string;
  /** Where clients connect (the two backends for direct, one listener otherwise). */
  ports: number[];
  /** The proxy's processes (empty for direct). */
  pids(): number[];
  /** The proxy's own pid (for signals such as a heap snapshot). */
  pid: number | undefined;
  stop(): Promise<void>;
}

export interface TargetOptions {
  workDir: string;
  backendPorts: number[];
  /** Extra node flags for the wslb processes (profiling). */
  wslbNodeArgs?: string[];
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitForPort(port: number, child: ChildProcess, logFile: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited with ${child.exitCode ?? child.signalCode}: ${tail(logFile)}`);
    }
    if (await canConnect(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not listening on ${port} after ${timeoutMs} ms: ${tail(logFile)}`);
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '';
  }
}

/** Starts a program with the soft fd limit raised to FD_LIMIT (or the hard limit when lower). */
function spawnWithFdLimit(command: string, args: string[], logFile: string, cwd: string): ChildProcess {
  const out = openSync(logFile, 'a');
  return spawn(
    'sh',
    [
      '-c',
      `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`,
      'sh',
      command,
      ...args,
    ],
    { cwd, stdio: ['ignore', out, out] },
  );
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

async function startProcess(
  key: TargetKey,
  label: string,
  command: string,
  args: string[],
  port: number,
  dir: string,
): Promise<RunningTarget> {
  const logFile = join(dir, `${key}.log`);
  const child = spawnWithFdLimit(command, args, logFile, dir);
  try {
    await waitForPort(port, child, logFile);
  } catch (err) {
    await stopChild(child, 'SIGKILL');
    throw new Error(`${label}: ${(err as Error).message}`);
  }
  return {
    key,
    label,
    ports: [port],
    pid: child.pid,
    pids: () => (child.pid ? processTree(child.pid) : []),
    stop: () => stopChild(child),
  };
}

export function wslbConfig(
  port: number,
  backendPorts: number[],
  extra: Record<string, unknown> = {},
): object {
  return {
    listen: { host: '127.0.0.1', port },
    backends: backendPorts.map((p, i) => ({ id: `b${i + 1}`, url: `ws://127.0.0.1:${p}` })),
    plugins: ['round-robin'],
    // Access logs off for every proxy in the run: the bench compares proxying, not log volume.
    log: { level: 'warn', access: false },
    timeouts: { drain: 1000 },
    ...extra,
  };
}

/** Whether a built-in plugin package is linked beside the binary. */
export function pluginInstalled(name: string): boolean {
  return existsSync(join(REPO_ROOT, 'packages/cli/node_modules/@wslb', name, 'package.json'));
}

/** Whether the admin listener (which opens just after the proxy's) serves wslb metrics. */
async function metricsServed(port: number): Promise<boolean> {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(3000) });
      const text = await res.text();
      return res.ok && text.includes('wslb_');
    } catch {
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

async function startWslb(
  key: TargetKey,
  label: string,
  config: object,
  port: number,
  options: TargetOptions,
): Promise<RunningTarget> {
  const dir = join(options.workDir, key);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'wslb.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  const nodeArgs = (options.wslbNodeArgs ?? []).map((a) => a.replaceAll('{dir}', dir));
  return startProcess(key, label, process.execPath, [...nodeArgs, WSLB_BIN, '--config', file], port, dir);
}

function nginxConfig(dir: string, port: number, backendPorts: number[]): string {
  return `daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile ${FD_LIMIT};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events {
  worker_connections ${FD_LIMIT - 500};
  multi_accept on;
}
http {
  access_log off;
  client_body_temp_path ${dir}/tmp;
  proxy_temp_path ${dir}/tmp;
  map $http_upgrade $connection_upgrade {
    default upgrade;
    '' close;
  }
  upstream backends {
${backendPorts.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }
  }
}
`;
}

function haproxyConfig(port: number, backendPorts: number[]): string {
  // maxconn so that 2 fds per connection fit the 20,000 fd limit.
  return `global
  nbthread 1
  maxconn 9900
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
  option forwardfor
frontend fe
  bind 127.0.0.1:${port} backlog 4096
  default_backend be
backend be
  balance roundrobin
${backendPorts.map((p, i) => `  server b${i + 1} 127.0.0.1:${p}`).join('\n')}
`;
}

/** Starts one target, or returns why it cannot run here. */
export async function startTarget(
  key: TargetKey,
  options: TargetOptions,
): Promise<RunningTarget | { key: TargetKey; label: string; unavailable: string }> {
  const label = TARGETS.find((t) => t.key === key)!.label;
  const dir = join(options.workDir, key);
  mkdirSync(dir, { recursive: true });
  const { backendPorts } = options;
  switch (key) {
    case 'direct':
      return {
        key,
        label,
        ports: backendPorts,
        pid: undefined,
        pids: () => [],
        stop: async () => {},
      };
    case 'wslb': {
      const port = await freePort();
      return startWslb(key, label, wslbConfig(port, backendPorts), port, options);
    }
    case 'wslb-plugins': {
      const missing = ['health-check', 'sticky-sessions'].filter((p) => !pluginInstalled(p));
      if (missing.length > 0)
        return { key, label, unavailable: `n/a (not installed: ${missing.join(', ')})` };
      const port = await freePort();
      const adminPort = await freePort();
      const config = wslbConfig(port, backendPorts, {
        plugins: [
          'round-robin',
          {
            use: 'health-check',
            options: { type: 'ws', path: '/', interval: 3000, timeout: 1000, rise: 2, fall: 5 },
          },
          { use: 'sticky-sessions', options: { cookie: 'wslb', secret: 'bench-secret-0123456789' } },
        ],
        admin: { host: '127.0.0.1', port: adminPort },
      });
      const running = await startWslb(key, label, config, port, options);
      if (!(await metricsServed(adminPort))) {
        await running.stop();
        return { key, label, unavailable: 'n/a (not installed: admin API /metrics)' };
      }
      return running;
    }
    case 'nginx': {
      const nginx = which('nginx');
      if (!nginx) return { key, label, unavailable: 'n/a (nginx not installed)' };
      const port = await freePort();
      mkdirSync(join(dir, 'tmp'), { recursive: true });
      writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, port, backendPorts));
      return startProcess(
        key,
        label,
        nginx,
        ['-e', 'stderr', '-p', dir, '-c', join(dir, 'nginx.conf')],
        port,
        dir,
      );
    }
    case 'haproxy': {
      const haproxy = which('haproxy');
      if (!haproxy) return { key, label, unavailable: 'n/a (haproxy not installed)' };
      const port = await freePort();
      writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig(port, backendPorts));
      return startProcess(key, label, haproxy, ['-db', '-f', join(dir, 'haproxy.cfg')], port, dir);
    }
    case 'node-floor': {
      const port = await freePort();
      return startProcess(
        key,
        label,
        process.execPath,
        [join(BENCH_SRC, 'node-floor.mjs'), String(port), ...backendPorts.map((p) => `ws://127.0.0.1:${p}`)],
        port,
        dir,
      );
    }
    case 'http-proxy': {
      const port = await freePort();
      return startProcess(
        key,
        label,
        process.execPath,
        [
          join(BENCH_SRC, 'http-proxy-server.mjs'),
          String(port),
          ...backendPorts.map((p) => `http://127.0.0.1:${p}`),
        ],
        port,
        dir,
      );
    }
  }
}
