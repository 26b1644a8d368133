/** Something a test started and must stop. */
export interface Closable {
  close(): unknown;
}

export interface Cleanup {
  /** Registers `thing.close()` to run at cleanup; returns `thing`. */
  add<T extends Closable>(thing: T): T;
  /** Registers any function to run at cleanup. */
  defer(fn: () => unknown): void;
  /**
   * Runs everything registered, newest first, each once, even when one fails (the first failure
   * is rethrown after the rest ran). Call it from `afterEach`.
   */
  run(): Promise<void>;
}

/** A cleanup list for `afterEach`: what a test starts, it registers here. */
export function createCleanup(): Cleanup {
  const pending: Array<() => unknown> = [];
  return {
    add(thing) {
      pending.push(() => thing.close());
      return thing;
    },
    defer(fn) {
      pending.push(fn);
    },
    async run() {
      let failure: unknown;
      let failed = false;
      for (const fn of pending.splice(0).reverse()) {
        try {
          await fn();
        } catch (err) {
          if (!failed) failure = err;
          failed = true;
        }
      }
      if (failed) throw failure;
    },
  };
}
