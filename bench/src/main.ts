/**
 * `npm run bench [-- --quick]`: the same WebSocket load, interleaved target after target, through
 * direct, wslb, wslb with plugins, nginx, HAProxy and node-http-proxy. Prints tables and writes
 * bench/RESULTS.md (a full run) with the machine and the command.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sourcesFor, startGenerators } from './generators.js';
import { ensureProxies } from './install.js';
import { profileWslb } from './profile.js';
import { type ResultRow, type RunReport, printSummary, writeResults } from './results.js';
import { scenarios, sleep, startBackends } from './scenarios.js';
import { parseSettings } from './settings.js';
import { median } from './stats.js';
import { REPO_ROOT, type RunningTarget, TARGETS, type TargetKey, startTarget } from './targets.js';

const log = (line: string): void => console.log(line);

/** CPU % other programs used during a window (0 for scenarios without one). */
function disturbed(figures: Record<string, number>): number {
  const key = Object.keys(figures).find((k) => k.endsWith('_otherPct'));
  return key ? (figures[key] ?? 0) : 0;
}

/** What a signal must stop: proxies, backends and generators are child processes of the run. */
const live = { targets: new Set<RunningTarget>(), stop: async (): Promise<void> => {} };

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`\n${signal}: stopping the targets`);
    void Promise.all([...live.targets].map((t) => t.stop()))
      .then(() => live.stop())
      .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2));
  const startedAt = new Date();
  const workDir = join(REPO_ROOT, 'bench/.work/run');
  rmSync(workDir, { recursive: true, force: true });
  mkdirSync(workDir, { recursive: true });

  const problems = settings.install ? ensureProxies(log) : new Map<string, string>();
  for (const p of problems.values()) log(`warning: ${p}`);

  const backends = await startBackends(2);
  const gens = startGenerators(settings.generators);
  live.stop = async () => {
    for (const g of gens) g.close();
    for (const c of backends.children) c.kill('SIGTERM');
  };
  await Promise.all(gens.map((g, i) => g.send({ cmd: 'sources', sources: sourcesFor(i) })));
  const perRound = new Map<TargetKey, Array<Record<string, number>>>();
  const unavailable = new Map<TargetKey, string>();
  const errors: string[] = [];
  const list = scenarios(settings).filter((sc) => !settings.only || settings.only.includes(sc.key));
  let profile: string | undefined;
  try {
    for (let round = 1; round <= settings.rounds; round++) {
      log(`\nround ${round}/${settings.rounds}`);
      const running: RunningTarget[] = [];
      for (const key of settings.targets) {
        // A target that cannot start (a plugin's options changed, a port taken) is reported, not fatal.
        const started = await startTarget(key, {
          workDir: join(workDir, `round${round}`),
          backendPorts: backends.ports,
          wslbNodeArgs: settings.wslbNodeArgs,
        }).catch((err: unknown) => ({
          key,
          label: TARGETS.find((t) => t.key === key)!.label,
          unavailable: `n/a (failed to start: ${(err as Error).message.split('\n')[0]})`,
        }));
        if ('unavailable' in started) {
          unavailable.set(key, started.unavailable);
          log(`  ${started.label}: ${started.unavailable}`);
        } else {
          running.push(started);
          live.targets.add(started);
        }
      }
      const figures = new Map<TargetKey, Record<string, number>>(running.map((t) => [t.key, {}]));
      try {
        for (const scenario of list) {
          for (const target of running) {
            const label = `${scenario.name} | ${target.label}`;
            let { figures: f, error } = await scenario.run(gens, target, backends, settings);
            // A window in which other programs took much of the machine is run again (twice at
            // most); the least disturbed one counts.
            for (let retry = 0; retry < settings.retries && disturbed(f) > settings.maxOtherPct; retry++) {
              log(`  ${label.padEnd(58)} again: other programs took ${Math.round(disturbed(f))}% CPU`);
              await sleep(settings.pauseMs);
              const again = await scenario.run(gens, target, backends, settings);
              if (disturbed(again.figures) < disturbed(f)) ({ figures: f, error } = again);
            }
            Object.assign(figures.get(target.key)!, f);
            log(`  ${label.padEnd(58)} ${scenario.line(f)}${error ? `  [errors: ${error}]` : ''}`);
            if (error) errors.push(`round ${round}, ${label}: ${error}`);
            await sleep(settings.pauseMs);
          }
        }
      } finally {
        await Promise.all(running.map((t) => t.stop()));
        live.targets.clear();
      }
      for (const [key, f] of figures) perRound.set(key, [...(perRound.get(key) ?? []), f]);
    }
    if (settings.profile) {
      const key = perRound.has('wslb-plugins') ? 'wslb-plugins' : 'wslb';
      profile = await profileWslb(key, gens, backends, join(workDir, 'profile'), settings, log);
    }
  } finally {
    for (const g of gens) g.close();
    for (const c of backends.children) c.kill('SIGTERM');
  }

  const rows: ResultRow[] = TARGETS.filter((t) => settings.targets.includes(t.key)).map((t) => {
    const rounds = perRound.get(t.key);
    if (!rounds)
      return { key: t.key, label: t.label, figures: undefined, note: unavailable.get(t.key) ?? 'n/a' };
    const keys = new Set(rounds.flatMap((r) => Object.keys(r)));
    const figures: Record<string, number> = {};
    for (const k of keys) figures[k] = median(rounds.map((r) => r[k] ?? Number.NaN));
    // RSS per tunnel of a garbage-collected process moves with where its collector stood: the spread.
    const kib = rounds.map((r) => r.idle_kib ?? Number.NaN).filter(Number.isFinite);
    figures.idle_kib_min = kib.length > 0 ? Math.min(...kib) : Number.NaN;
    figures.idle_kib_max = kib.length > 0 ? Math.max(...kib) : Number.NaN;
    return { key: t.key, label: t.label, figures };
  });
  const report: RunReport = {
    settings,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    rows,
    errors,
    profile,
  };
  printSummary(report);
  writeResults(report, log);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
