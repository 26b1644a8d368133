import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { versionOf, which } from './install.js';
import { type Column, type TableRow, figureTable, formatTable, ratioTable } from './report.js';
import type { Settings } from './settings.js';
import { formatNumber } from './stats.js';
import { REPO_ROOT, TARGETS, type TargetKey } from './targets.js';

export interface ResultRow extends TableRow {
  key: TargetKey;
}

export interface RunReport {
  settings: Settings;
  startedAt: string;
  finishedAt: string;
  rows: ResultRow[];
  errors: string[];
  /** Markdown summary of the wslb profile, with --profile. */
  profile: string | undefined;
}

const col = (title: string, key: string): Column => ({ title, value: (f) => f[key] });

function cpuColumns(prefix: string): Column[] {
  return [
    col('proxy CPU %', `${prefix}_proxyPct`),
    col('gen CPU %', `${prefix}_genPct`),
    col('busiest gen %', `${prefix}_genMaxPct`),
    col('backends CPU %', `${prefix}_backendPct`),
    col('other CPU %', `${prefix}_otherPct`),
    col('errors', `${prefix}_errors`),
  ];
}

function echoColumns(n: number): Column[] {
  const p = `e${n}`;
  return [
    col('msgs/s', `${p}_rate`),
    col('RTT p50 ms', `${p}_p50`),
    col('RTT p99 ms', `${p}_p99`),
    col('RTT p99.9 ms', `${p}_p999`),
    col('proxy us/msg', `${p}_cpu`),
    ...cpuColumns(p),
  ];
}

export const SECTIONS: Array<{ title: string; what: string; columns: Column[] }> = [
  {
    title: 'Handshakes',
    what: 'connect, upgrade (101 checked), close; 64 in flight; latency from connect() to the 101',
    columns: [
      col('handshakes/s', 'hs_rate'),
      col('p50 ms', 'hs_p50'),
      col('p99 ms', 'hs_p99'),
      col('proxy us/handshake', 'hs_cpu'),
      ...cpuColumns('hs'),
    ],
  },
  {
    title: 'Echo, 64-byte messages, 100 connections',
    what: 'each connection sends one message and waits for its echo (round trip), then the next',
    columns: echoColumns(100),
  },
  {
    title: 'Echo, 64-byte messages, 1,000 connections',
    what: 'as above with 1,000 connections',
    columns: echoColumns(1000),
  },
  {
    title: 'Bulk, 64 KiB messages',
    what: 'MB/s of payload echoed back (each byte crosses the proxy twice); 4 connections, 4 messages in flight each',
    columns: [col('MB/s', 'bulk_rate'), col('proxy ms/MB', 'bulk_cpu'), ...cpuColumns('bulk')],
  },
  {
    title: 'Idle tunnels',
    what:
      'RSS of the proxy (all its processes) before and after opening the tunnels, after a warm-up; ' +
      'KiB/tunnel is the median over the rounds, with the lowest and highest round beside it',
    columns: [
      col('tunnels', 'idle_tunnels'),
      col('RSS before MiB', 'idle_before'),
      col('RSS after MiB', 'idle_after'),
      col('KiB/tunnel', 'idle_kib'),
      col('lowest round', 'idle_kib_min'),
      col('highest round', 'idle_kib_max'),
      col('errors', 'idle_errors'),
    ],
  },
];

/** The figures that matter most, side by side, for the ratio tables. */
const KEY_COLUMNS: Column[] = [
  col('handshakes/s', 'hs_rate'),
  col('us/handshake', 'hs_cpu'),
  col('hs p99', 'hs_p99'),
  col('msgs/s x100', 'e100_rate'),
  col('us/msg x100', 'e100_cpu'),
  col('RTT p99 x100', 'e100_p99'),
  col('msgs/s x1000', 'e1000_rate'),
  col('us/msg x1000', 'e1000_cpu'),
  col('RTT p99 x1000', 'e1000_p99'),
  col('bulk MB/s', 'bulk_rate'),
  col('ms/MB', 'bulk_cpu'),
  col('KiB/tunnel', 'idle_kib'),
];

function git(args: string[]): string {
  try {
    return execFileSync('git', ['-C', REPO_ROOT, ...args], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

export function commitOf(): string {
  const dirty = git(['status', '--porcelain', '--untracked-files=no']) !== '';
  return `${git(['rev-parse', '--short', 'HEAD'])}${dirty ? '+changes' : ''}`;
}

function packageVersion(name: string): string {
  for (const base of ['bench/node_modules', 'node_modules']) {
    const file = join(REPO_ROOT, base, name, 'package.json');
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  }
  return 'not installed';
}

function machine(): string[][] {
  const cpu = cpus();
  return [
    ['CPU', `${cpu.length} cores, ${cpu[0]?.model ?? 'unknown'}`],
    ['memory', `${(totalmem() / 2 ** 30).toFixed(1)} GiB`],
    ['kernel', `Linux ${release()}`],
    ['Node.js', process.version],
    ['nginx', which('nginx') ? versionOf('nginx', ['-v']).replace('nginx version: ', '') : 'not installed'],
    [
      'HAProxy',
      which('haproxy') ? versionOf('haproxy', ['-v']).replace(/^HAProxy version /, '') : 'not installed',
    ],
    ['node-http-proxy', packageVersion('http-proxy')],
    ['ws (clients and backends)', packageVersion('ws')],
    ['wslb', commitOf()],
  ];
}

/** What the profiles of wslb show for each target it can miss; printed only for missed ones. */
const WHY: Array<[string, string]> = [
  [
    'CPU per handshake',
    "CPU per handshake: a handshake is an accept through Node's http server (llhttp, an " +
      'IncomingMessage), a net.connect to the backend, two header writes and, at the end, two net.Socket ' +
      'stream pairs torn down. The handshake profile has its top in the connect, write and close system ' +
      'calls and in the construction of net.Socket and its stream states; nginx does the same system ' +
      "calls from C with preallocated connection structures. wslb's own work per handshake (hooks, " +
      'header copy, parsing the 101) is spread below the top entries.',
  ],
  [
    'CPU per echo message',
    'CPU per echo message: each chunk goes libuv read, a new Buffer, Readable "data", Writable.write, ' +
      'uv_try_write, then a process.nextTick for the write callback. The echo profile has most of the ' +
      'time in the write system call (writeBuffer) and the rest spread over the stream machinery; going ' +
      "below that needs the socket's internal handle (Node internals), which wslb does not use.",
  ],
  [
    'bulk MB/s',
    'bulk MB/s: throughput here is set by the window (4 x 4 x 64 KiB in flight) over the round trip, so ' +
      "it moves with every process on the machine; the proxy's own cost is the ms/MB column. Every read " +
      'allocates a fresh 64 KiB buffer, and their external memory triggers a young-generation collection ' +
      'about every 100 ms. V8 (kV8ActivationThreshold in its incremental-marking.cc) starts incremental ' +
      'marking only once the old generation passes 8 MiB: above it, each of those collections is followed ' +
      'by a full mark-compact, the "(garbage collector)" share of the bulk profile and about twice the ' +
      'CPU per MB (--trace-gc shows both patterns). wslb therefore keeps its resident heap small: ajv is ' +
      'unloaded a second after the last validation, the admin API with prom-client loads only when ' +
      'configured and node:cluster only in a cluster (history steps 04 and 05 below); with plugins, ' +
      "only prom-client's four metric classes load, the ws health check speaks WebSocket without the " +
      'ws library and semver loads only while a range is checked (step 06), which leaves about 1.5 MiB ' +
      'below the threshold after start-up for what V8 compiles over a run of every scenario. Where a ' +
      'run still carries it over, its bulk row above shows it. A proxy holding a few thousand ' +
      'connections is over the threshold whatever it loads, as is any Node.js proxy. Reading into reused buffers ' +
      "(net.connect's onread) is not safe in a proxy: a write to a slow client keeps a view of the " +
      'buffer while other sockets read into it (tried; test/tunnel-backpressure.test.ts caught the ' +
      'corruption), and a socket accepted by http.Server cannot take one at all.',
  ],
  [
    'RSS per idle tunnel',
    'RSS per idle tunnel: two net.Socket objects with their Readable/Writable states, two TCP handles ' +
      '(uv_tcp_t and TCPWrap, outside the JS heap), the context (request line only once open) and the ' +
      'Tunnel. The heap table lists what the JS heap holds per tunnel; the rest is native memory and ' +
      'the heap the collector had grown while the tunnels opened, which is why the rounds differ.',
  ],
  [
    'RTT p99',
    'RTT p99: the round trip holds two event-loop turns of wslb on a machine where the generators, ' +
      'the backends and the proxy compete for two cores; the tail follows the CPU per message above.',
  ],
];

/** The wslb row the targets apply to: with plugins when installed, else the plain one. */
function wslbRow(rows: readonly ResultRow[]): ResultRow | undefined {
  return (
    rows.find((r) => r.key === 'wslb-plugins' && r.figures) ?? rows.find((r) => r.key === 'wslb' && r.figures)
  );
}

function targetsTable(rows: readonly ResultRow[]): string {
  const w = wslbRow(rows);
  const nginx = rows.find((r) => r.key === 'nginx')?.figures;
  const haproxy = rows.find((r) => r.key === 'haproxy')?.figures;
  if (!w?.figures) return 'No wslb figures in this run.';
  const f = w.figures;
  const check = (
    goal: string,
    mine: number | undefined,
    limit: number | undefined,
    atMost: boolean,
    unit: string,
  ): string[] => {
    if (mine === undefined || limit === undefined || !Number.isFinite(mine) || !Number.isFinite(limit))
      return [goal, formatNumber(mine ?? Number.NaN), formatNumber(limit ?? Number.NaN), 'not measured'];
    const ok = atMost ? mine <= limit : mine >= limit;
    const gap = atMost ? mine / limit : limit / mine;
    return [
      goal,
      `${formatNumber(mine)} ${unit}`,
      `${formatNumber(limit)} ${unit}`,
      ok ? 'met' : `missed by ${((gap - 1) * 100).toFixed(0)}%`,
    ];
  };
  const rowsOut = [
    check('CPU per handshake <= nginx', f.hs_cpu, nginx?.hs_cpu, true, 'us'),
    check('CPU per echo message <= HAProxy (100 conns)', f.e100_cpu, haproxy?.e100_cpu, true, 'us'),
    check('CPU per echo message <= HAProxy (1,000 conns)', f.e1000_cpu, haproxy?.e1000_cpu, true, 'us'),
    check('bulk MB/s >= HAProxy', f.bulk_rate, haproxy?.bulk_rate, false, 'MB/s'),
    check('RSS per idle tunnel <= 6 KiB', f.idle_kib, 6, true, 'KiB'),
    check(
      'RTT p99 <= HAProxy + 10% (100 conns)',
      f.e100_p99,
      haproxy?.e100_p99 === undefined ? undefined : haproxy.e100_p99 * 1.1,
      true,
      'ms',
    ),
    check(
      'RTT p99 <= HAProxy + 10% (1,000 conns)',
      f.e1000_p99,
      haproxy?.e1000_p99 === undefined ? undefined : haproxy.e1000_p99 * 1.1,
      true,
      'ms',
    ),
  ];
  const missed = rowsOut.filter((r) => r[3]!.startsWith('missed')).map((r) => r[0]!);
  const why = [...new Set(missed.map((goal) => WHY.find(([prefix]) => goal.startsWith(prefix))?.[1]))]
    .filter((text): text is string => text !== undefined)
    .map((text) => `- ${text}`);
  return [
    `Measured on: **${w.label}**`,
    formatTable(['target', 'wslb', 'limit', 'result'], rowsOut),
    ...(why.length > 0
      ? [`Why the missed ones are missed (see the profile section for the evidence):\n\n${why.join('\n')}`]
      : []),
  ].join('\n\n');
}

function tables(report: RunReport): string {
  const parts: string[] = [];
  for (const section of SECTIONS) {
    parts.push(`### ${section.title}\n\n${section.what}.\n\n${figureTable(section.columns, report.rows)}`);
  }
  const direct = report.rows.find((r) => r.key === 'direct');
  const nginx = report.rows.find((r) => r.key === 'nginx');
  parts.push(
    `### Ratios to direct (same run)\n\n${ratioTable(KEY_COLUMNS, report.rows, direct)}`,
    `### Ratios to nginx (same run)\n\n${ratioTable(KEY_COLUMNS, report.rows, nginx)}`,
    `### Targets\n\n${targetsTable(report.rows)}`,
  );
  return parts.join('\n\n');
}

export function printSummary(report: RunReport): void {
  console.log(`\n${tables(report)}\n`);
  if (report.errors.length > 0) console.log(`errors:\n${report.errors.map((e) => `  ${e}`).join('\n')}`);
}

interface HistoryEntry {
  name: string;
  note: string;
  commit: string;
  date: string;
  rows: ResultRow[];
}

const HISTORY_DIR = join(REPO_ROOT, 'bench/history');

function readHistory(): HistoryEntry[] {
  if (!existsSync(HISTORY_DIR)) return [];
  return readdirSync(HISTORY_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(HISTORY_DIR, f), 'utf8')) as HistoryEntry);
}

/** Each recorded step against nginx and HAProxy of its own run, so machine noise cancels out. */
function historyTable(entries: readonly HistoryEntry[]): string {
  const fmt = (mine: number | undefined, base: number | undefined): string => {
    if (mine === undefined || !Number.isFinite(mine)) return '-';
    const ratio =
      base !== undefined && Number.isFinite(base) && base !== 0 ? ` (${(mine / base).toFixed(2)}x)` : '';
    return `${formatNumber(mine)}${ratio}`;
  };
  const rows = entries.map((e) => {
    const w = wslbRow(e.rows)?.figures ?? {};
    const label = wslbRow(e.rows)?.key ?? '-';
    const n = e.rows.find((r) => r.key === 'nginx')?.figures ?? {};
    const h = e.rows.find((r) => r.key === 'haproxy')?.figures ?? {};
    return [
      e.name,
      e.note,
      e.commit,
      label,
      fmt(w.hs_cpu, n.hs_cpu),
      fmt(w.e1000_cpu, h.e1000_cpu),
      fmt(w.bulk_rate, h.bulk_rate),
      fmt(w.bulk_cpu, h.bulk_cpu),
      fmt(w.idle_kib, undefined),
      fmt(w.e1000_p99, h.e1000_p99),
    ];
  });
  return formatTable(
    [
      'step',
      'change',
      'commit',
      'row',
      'us/handshake (x nginx)',
      'us/msg x1000 (x HAProxy)',
      'bulk MB/s (x HAProxy)',
      'bulk ms/MB (x HAProxy)',
      'KiB/tunnel',
      'RTT p99 x1000 ms (x HAProxy)',
    ],
    rows,
    4,
  );
}

function isFullRun(s: Settings): boolean {
  return (
    !s.quick &&
    !s.only &&
    s.rounds >= 3 &&
    s.targets.length === TARGETS.length &&
    s.tunnels >= 9000 &&
    s.durationMs >= 5000
  );
}

export function writeResults(report: RunReport, log: (line: string) => void): void {
  const s = report.settings;
  const command = `npm run bench${s.argv.length > 0 ? ` -- ${s.argv.join(' ')}` : ''}`;
  // Recorded first, so that this run is a step of its own history table.
  if (s.record) {
    mkdirSync(HISTORY_DIR, { recursive: true });
    const entry: HistoryEntry = {
      name: s.record,
      note: s.note ?? '',
      commit: commitOf(),
      date: report.startedAt,
      rows: report.rows,
    };
    writeFileSync(join(HISTORY_DIR, `${s.record}.json`), `${JSON.stringify(entry, null, 2)}\n`);
    log(`recorded bench/history/${s.record}.json`);
  }
  const history = readHistory();
  const md = [
    '# wslb benchmark results',
    '',
    `Written by \`bench/\` from one run; nothing here is typed by hand. Command: \`${command}\`, ` +
      `${report.startedAt} to ${report.finishedAt}; ${s.rounds} round(s) of ${s.durationMs / 1000} s per ` +
      `target and scenario, targets interleaved, figures are medians over the rounds; ` +
      `${s.generators} load generator processes.`,
    '',
    '## Machine',
    '',
    formatTable(['', ''], machine(), 2),
    '',
    '## Results',
    '',
    'CPU figures are the process CPU time (user + system, from /proc) over the measuring window; ' +
      '100% is one core. The generators, the two echo backends and the proxy share the cores, so the ' +
      'CPU cost per unit is the figure to compare across proxies; throughput shows what the whole ' +
      'machine reached. "other CPU %" is what the rest of the machine ran meanwhile: on a shared ' +
      'machine a high value there means that window was disturbed.',
    '',
    tables(report),
    '',
    ...(report.errors.length > 0 ? ['## Errors', '', ...report.errors.map((e) => `- ${e}`), ''] : []),
    ...(report.profile ? ['## Profile of wslb', '', report.profile, ''] : []),
    ...(history.length > 0
      ? [
          '## What each change bought',
          '',
          'Each step was measured with `--record` (wslb, nginx and HAProxy in one run); the ratios compare ' +
            'with nginx and HAProxy of that same run.',
          '',
          historyTable(history),
          '',
        ]
      : []),
  ].join('\n');
  const out =
    s.out ?? (isFullRun(s) ? join(REPO_ROOT, 'bench/RESULTS.md') : join(REPO_ROOT, 'bench/.work/RESULTS.md'));
  writeFileSync(out, md);
  log(`wrote ${out}`);
}
