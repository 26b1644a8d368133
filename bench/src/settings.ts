import { TARGETS, type TargetKey } from './targets.js';

export interface Settings {
  quick: boolean;
  rounds: number;
  warmupMs: number;
  durationMs: number;
  pauseMs: number;
  /** Idle tunnels held open for the RSS figure. */
  tunnels: number;
  idleWarmupMs: number;
  idleSettleMs: number;
  handshakeConcurrency: number;
  bulkConnections: number;
  bulkWindow: number;
  generators: number;
  targets: TargetKey[];
  /** Scenarios to run (all when undefined): idle, handshakes, echo100, echo1000, bulk. */
  only: string[] | undefined;
  /** Extra node flags for the wslb processes, space separated (--wslb-node-args "--trace-gc"). */
  wslbNodeArgs: string[];
  /** A window whose "other CPU %" is over maxOtherPct is run again, up to `retries` times. */
  retries: number;
  maxOtherPct: number;
  install: boolean;
  profile: boolean;
  /** Where the report goes; by default bench/RESULTS.md for a full run, bench/.work for others. */
  out: string | undefined;
  /** Saves this run under bench/history/<name>.json, for the optimization log. */
  record: string | undefined;
  note: string | undefined;
  argv: string[];
}

export const USAGE = `npm run bench -- [options]
  --quick              short windows, 1 round, 1,000 idle tunnels (under a minute)
  --rounds N           rounds of A B C ... interleaving (default 3; figures are medians)
  --duration S         seconds measured per target and scenario (default 5)
  --tunnels N          idle tunnels for the RSS figure (default 9000)
  --retries N          runs again a window disturbed by other programs (>25% CPU), default 2
  --generators N       load generator processes (default 2)
  --targets a,b        subset of: ${TARGETS.map((t) => t.key).join(', ')}
  --wslb-node-args "..."  node flags for the wslb processes (e.g. "--trace-gc")
  --only a,b           subset of scenarios: idle, handshakes, echo100, echo1000, bulk
  --profile            then profile wslb (--cpu-prof, heap snapshot) and add the summary
  --out FILE           write the report there
  --record NAME        keep this run in bench/history/NAME.json (with --note TEXT)
  --no-install         never apt-get install nginx/haproxy`;

export function parseSettings(argv: string[]): Settings {
  const flag = (name: string): boolean => argv.includes(name);
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  if (flag('--help')) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = flag('--quick');
  // The Node floor row explains gaps; --quick leaves it out to stay under a minute.
  const defaults = TARGETS.map((t) => t.key).filter((k) => !quick || k !== 'node-floor');
  const targets = (value('--targets')?.split(',') ?? defaults) as TargetKey[];
  for (const t of targets) {
    if (!TARGETS.some((k) => k.key === t)) throw new Error(`unknown target "${t}"\n${USAGE}`);
  }
  const duration = Number(value('--duration') ?? (quick ? 1 : 5));
  return {
    quick,
    rounds: Number(value('--rounds') ?? (quick ? 1 : 3)),
    warmupMs: quick ? 250 : 1000,
    durationMs: duration * 1000,
    pauseMs: quick ? 50 : 500,
    tunnels: Number(value('--tunnels') ?? (quick ? 1000 : 9000)),
    idleWarmupMs: quick ? 200 : 1000,
    idleSettleMs: quick ? 300 : 5000,
    handshakeConcurrency: 64,
    bulkConnections: 4,
    bulkWindow: 4,
    generators: Number(value('--generators') ?? 2),
    targets,
    only: value('--only')?.split(','),
    wslbNodeArgs: value('--wslb-node-args')?.split(' ').filter(Boolean) ?? [],
    retries: Number(value('--retries') ?? (quick ? 0 : 2)),
    maxOtherPct: 25,
    install: !flag('--no-install'),
    profile: flag('--profile'),
    out: value('--out'),
    record: value('--record'),
    note: value('--note'),
    argv,
  };
}
