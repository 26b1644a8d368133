import { type EchoBackend, type LogLine, type RunningWslb, runWslb, startEchoBackends } from '@wslb/testing';

/** Timeouts short enough that every fuzz case ends within a few seconds. */
export const FUZZ_TIMEOUTS = { request: 1000, handshake: 2000, response: 2000, connect: 1000 };
/** How long a case may take before its connection counts as left open. */
export const FUZZ_DEADLINE_MS = 6000;

export interface FuzzTarget {
  wslb: RunningWslb;
  backends: EchoBackend[];
  close(): Promise<number | null>;
}

/** The real binary in front of two echo backends, as the fuzzer attacks it. */
export async function startFuzzTarget(): Promise<FuzzTarget> {
  const backends = await startEchoBackends(2);
  const wslb = await runWslb({
    listen: { host: '127.0.0.1', port: 0 },
    backends: backends.map((b) => ({ id: b.id, url: b.url })),
    timeouts: { ...FUZZ_TIMEOUTS, drain: 3000 },
    // Access lines tell when the proxy has finished a connection (the checks after a run wait for one).
    log: { level: 'info', access: true },
  });
  return {
    wslb,
    backends,
    close: async () => {
      const code = await wslb.stop();
      await Promise.all(backends.map((b) => b.close()));
      return code;
    },
  };
}

/**
 * Live connections the proxy still counted when it was told to stop (it logs them while
 * draining); after a run whose clients all went away this must be none.
 */
export function liveAtStop(logs: readonly LogLine[]): number {
  const line = logs.find((l) => l.msg === 'draining');
  return line ? Number(line.active) : 0;
}

/** Log lines that mean the proxy itself failed (an uncaught fault, an error or fatal line). */
export function faultLines(logs: readonly LogLine[]): LogLine[] {
  return logs.filter(
    (l) =>
      l.level === 'error' ||
      l.level === 'fatal' ||
      l.code === 'WSLB_ERR_UNCAUGHT' ||
      l.code === 'WSLB_ERR_TAP_FAILED',
  );
}
