import type { Logger } from '@wslb/core';

export interface SignalActions {
  log: Logger;
  /** What the log says when the first SIGTERM/SIGINT arrives. */
  stopMessage: string;
  /** Drains and closes; runs once, after the start finished well. */
  stop(): Promise<void>;
  /** A second signal: give up on draining. */
  kill?(): void;
  /** SIGHUP, after the start finished well. */
  reload(): Promise<void>;
  /**
   * A worker of `workers: N`: every SIGTERM/SIGINT means "drain". Its primary decides when to give
   * up (a second signal to the primary kills the workers).
   */
  worker?: boolean;
}

/**
 * Signals this close to the first are the same stop request delivered twice: a terminal's Ctrl-C
 * or systemd's stop reaches every process of the group, and a parent that forwards signals (npm,
 * a start script, the cluster primary) sends it again. An operator's second Ctrl-C comes later.
 */
export const REPEATED_SIGNAL_MS = 500;

export interface SignalHandling {
  /** Call once the listeners are up (true) or failed to start (false). */
  started(ok: boolean): void;
  /** The exit code, once a signal stopped the process: 0 drained, 1 forced or failed. */
  readonly exitCode: Promise<number>;
}

/**
 * SIGTERM/SIGINT drain then exit, a second one (half a second or more later) exits at once,
 * SIGHUP reloads. Installed before
 * anything listens: a signal that lands while the proxy is still binding waits for the start
 * instead of killing the process.
 */
export function handleSignals(actions: SignalActions): SignalHandling {
  const { log } = actions;
  let markStarted!: (ok: boolean) => void;
  const started = new Promise<boolean>((resolve) => (markStarted = resolve));
  const exitCode = new Promise<number>((resolve) => {
    let stoppingSince: number | undefined;
    const stop = (signal: NodeJS.Signals): void => {
      if (stoppingSince !== undefined) {
        if (actions.worker || Date.now() - stoppingSince < REPEATED_SIGNAL_MS) {
          log.debug({ signal }, 'signal repeated: already draining');
          return;
        }
        log.warn({ signal }, 'second signal: exiting at once');
        actions.kill?.();
        resolve(1);
        return;
      }
      stoppingSince = Date.now();
      log.info({ signal }, actions.stopMessage);
      started
        .then((ok) => (ok ? actions.stop() : undefined))
        .then(
          () => resolve(0),
          (err: unknown) => {
            log.error({ err }, 'close failed');
            resolve(1);
          },
        );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGHUP', () => {
      started
        .then((ok) => (ok ? actions.reload() : undefined))
        .catch((err: unknown) => log.error({ err }, 'reload failed'));
    });
  });
  return { started: markStarted, exitCode };
}
