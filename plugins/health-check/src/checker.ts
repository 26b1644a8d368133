import type { ActiveSettings } from './options.js';
import { probe, type ProbeResult, type ProbeTarget } from './probe.js';

/** One check's outcome, as the runner reports it: plain data keyed by backend id. */
export interface CheckResult extends ProbeResult {
  backend: string;
  /** When the check finished (ms since epoch). */
  at: number;
}

interface Entry {
  /** Read at each check, so a reload that changes the backend's url is picked up. */
  target: () => ProbeTarget;
  timer: NodeJS.Timeout | undefined;
  inFlight: AbortController | undefined;
}

/**
 * Runs active checks: one timer chain per backend, the first check jittered over one interval
 * (so a restart does not check every backend at once), never two checks of a backend in flight.
 * It only reports results; applying them (rise/fall, pool state) is HealthTracker's job, so a
 * later change can run checks in one process and apply the results in others.
 */
export class ActiveChecker {
  readonly settings: ActiveSettings;
  readonly #onResult: (result: CheckResult) => void;
  readonly #entries = new Map<string, Entry>();
  #stopped = false;

  constructor(settings: ActiveSettings, onResult: (result: CheckResult) => void) {
    this.settings = settings;
    this.#onResult = onResult;
  }

  /** Backend ids being checked. */
  get ids(): string[] {
    return [...this.#entries.keys()];
  }

  add(id: string, target: () => ProbeTarget): void {
    if (this.#stopped || this.#entries.has(id)) return;
    const entry: Entry = { target, timer: undefined, inFlight: undefined };
    this.#entries.set(id, entry);
    this.#schedule(id, entry, Math.floor(Math.random() * this.settings.interval));
  }

  /** Stops checking a backend; a check in flight is cancelled and its result dropped. */
  remove(id: string): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    this.#entries.delete(id);
    clearTimeout(entry.timer);
    entry.inFlight?.abort();
  }

  /** Stops every timer and cancels every check in flight. */
  stop(): void {
    this.#stopped = true;
    for (const id of [...this.#entries.keys()]) this.remove(id);
  }

  #schedule(id: string, entry: Entry, delay: number): void {
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      void this.#run(id, entry);
    }, delay);
  }

  async #run(id: string, entry: Entry): Promise<void> {
    const controller = new AbortController();
    entry.inFlight = controller;
    const started = Date.now();
    let result: ProbeResult;
    try {
      result = await probe(entry.target(), this.settings, controller.signal);
    } catch (err) {
      result = { ok: false, type: this.settings.type, reason: (err as Error).message, durationMs: 0 };
    }
    entry.inFlight = undefined;
    if (this.#entries.get(id) !== entry) return;
    // The next check starts one interval after this one started, or at once if it took longer.
    this.#schedule(id, entry, Math.max(0, this.settings.interval - (Date.now() - started)));
    this.#onResult({ ...result, backend: id, at: Date.now() });
  }
}
