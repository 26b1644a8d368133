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
}

export interface SignalHandling {
  /** Call once the listeners are up (true) or failed to start (false). */
  started(ok: boolean): void;
  /** The exit code, once a signal stopped the process: 0 drained, 1 forced or failed. */
  readonly exitCode: Promise<number>;
}

/**
 * SIGTERM/SIGINT drain then exit, a second one exits at once, SIGHUP reloads. Installed before
 * anything listens: a signal that lands while the proxy is still binding waits for the start
 * instead of killing the process.
 */
export function handleSignals(actions: SignalActions): SignalHandling {
  const { log } = actions;
  let markStarted!: (ok: boolean) => void;
  const started = new Promise<boolean>((resolve) => (markStarted = resolve));
  const exitCode = new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting at once');
        actions.kill?.();
        resolve(1);
        return;
      }
      stopping = true;
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
