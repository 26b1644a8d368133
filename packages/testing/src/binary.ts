import { DEFAULT_TIMEOUTS } from '@wslb/core';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export interface LogLine {
  level?: string;
  msg?: string;
  [key: string]: unknown;
}

export interface RunningWslb {
  child: ChildProcess;
  /** Folder holding the config file (removed by stop/kill). */
  dir: string;
  configFile: string;
  /** Ports of the listeners, in config order. */
  ports: number[];
  port: number;
  url: string;
  httpUrl: string;
  /** Every JSON log line so far. */
  logs: LogLine[];
  /** Non-JSON output (stderr and stdout). */
  output(): string;
  /** Resolves with the first log line (past or future) matching `match`. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Rewrites the config file (then send SIGHUP to reload). */
  writeConfig(config: object | string): void;
  /**
   * How long `stop()` waits by default: the longest `timeouts.drain` of the configs given so far
   * (default 25000, as in wslb), plus 5000 ms to close and exit.
   */
  readonly stopTimeoutMs: number;
  /**
   * Sends a signal (default SIGTERM) and resolves with the exit code. A wslb not gone after
   * `timeoutMs` (default `stopTimeoutMs`) gets SIGKILL, and the promise rejects.
   */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Path of the `wslb` binary script of the installed @wslb/cli. */
export function wslbBinPath(): string {
  const require = createRequire(join(process.cwd(), 'noop.js'));
  let pkgFile: string;
  try {
    pkgFile = require.resolve('@wslb/cli/package.json');
  } catch {
    pkgFile = createRequire(import.meta.url).resolve('@wslb/cli/package.json');
  }
  return join(dirname(pkgFile), 'bin', 'wslb.js');
}

/** Node flags that make a started wslb exit once the process that started it is gone. */
function exitWithParent(): string[] {
  return ['--import', new URL('./exit-with-parent.js', import.meta.url).href];
}

export interface RunWslbResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the binary to completion (for --check, --print-schema, bad configs). */
export function execWslb(
  args: string[],
  { cwd, timeoutMs = 15000 }: { cwd?: string; timeoutMs?: number } = {},
): Promise<RunWslbResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...exitWithParent(), wslbBinPath(), ...args], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wslb ${args.join(' ')} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      // 'exit' can come before the pipes drain.
      child.stdout.once('close', () => resolve({ code, stdout, stderr }));
      if (child.stdout.closed) resolve({ code, stdout, stderr });
    });
  });
}

/** What a stopping wslb may take past its drain: closing what is left, then exiting. */
const STOP_MARGIN_MS = 5000;

/** The drain of a config (object or JSON text), as wslb resolves it; undefined if unreadable. */
function drainOf(config: object | string): number | undefined {
  let parsed: unknown = config;
  if (typeof config === 'string') {
    try {
      parsed = JSON.parse(config);
    } catch {
      return undefined;
    }
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const drain = (parsed as { timeouts?: { drain?: unknown } }).timeouts?.drain;
  return typeof drain === 'number' && drain >= 0 ? drain : DEFAULT_TIMEOUTS.drain;
}

/** Writes a config to a temp folder. Returns the file path. */
export function writeTempConfig(config: object | string, name = 'wslb.json'): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'wslb-test-'));
  const file = join(dir, name);
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  return { dir, file };
}

/**
 * Starts the `wslb` binary with a config object (written to a temp file) and resolves once every
 * listener logged its `listening` line. Use port 0 in `listen` to get free ports.
 */
export async function runWslb(
  config: object,
  {
    timeoutMs = 15000,
    env,
    dir: givenDir,
  }: { timeoutMs?: number; env?: NodeJS.ProcessEnv; dir?: string } = {},
): Promise<RunningWslb> {
  const { dir, file } = givenDir
    ? { dir: givenDir, file: join(givenDir, 'wslb.json') }
    : writeTempConfig(config);
  if (givenDir) writeFileSync(file, JSON.stringify(config, null, 2));
  const listenCount = (() => {
    const listen = (config as { listen?: unknown }).listen;
    return Array.isArray(listen) ? listen.length : 1;
  })();
  // A SIGTERM'd wslb may take its whole drain when a client stays; configs written for a
  // reload may drain longer, so the longest one counts.
  let longestDrain = drainOf(config) ?? DEFAULT_TIMEOUTS.drain;
  const child = spawn(process.execPath, [...exitWithParent(), wslbBinPath(), '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const logs: LogLine[] = [];
  let text = '';
  const waiters: Array<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  let pending = '';
  child.stdout!.on('data', (d: Buffer) => {
    pending += d.toString();
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      let parsed: LogLine | undefined;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        text += `${line}\n`;
      }
      if (!parsed) continue;
      logs.push(parsed);
      for (const w of [...waiters]) {
        if (w.match(parsed)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const cleanup = (): void => {
    if (!givenDir) rmSync(dir, { recursive: true, force: true });
  };
  exited.then(cleanup, cleanup);

  const waitForLog = (match: (l: LogLine) => boolean, ms = 10000): Promise<LogLine> => {
    const found = logs.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(
          new Error(
            `no matching log line within ${ms} ms; output:\n${text}${logs.map((l) => JSON.stringify(l)).join('\n')}`,
          ),
        );
      }, ms);
      waiters.push(waiter);
    });
  };

  const listening: number[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wslb did not start within ${timeoutMs} ms:\n${text}`));
    }, timeoutMs);
    const check = (): void => {
      for (const l of logs)
        if (l.msg === 'listening' && !listening.includes(l.port as number)) listening.push(l.port as number);
      if (listening.length >= listenCount) {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`wslb exited with ${code} before listening:\n${text}`));
    });
  });
  const port = listening[0]!;
  return {
    child,
    dir,
    configFile: file,
    ports: listening,
    port,
    url: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    logs,
    output: () => text,
    waitForLog,
    writeConfig: (next) => {
      writeFileSync(file, typeof next === 'string' ? next : JSON.stringify(next, null, 2));
      longestDrain = Math.max(longestDrain, drainOf(next) ?? 0);
    },
    get stopTimeoutMs() {
      return longestDrain + STOP_MARGIN_MS;
    },
    stop: async (signal = 'SIGTERM', ms = longestDrain + STOP_MARGIN_MS) => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const result = await Promise.race([
        exited,
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), ms);
        }),
      ]);
      clearTimeout(timer);
      if (result === 'timeout') {
        child.kill('SIGKILL');
        await exited;
        throw new Error(`wslb did not exit within ${ms} ms after ${signal}`);
      }
      return result;
    },
    exited,
  };
}
