import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Generator } from './generators.js';
import { formatTable } from './report.js';
import { type Backends, runEcho, runHandshakes, runIdle, sleep } from './scenarios.js';
import type { Settings } from './settings.js';
import { formatNumber } from './stats.js';
import { type RunningTarget, type TargetKey, startTarget } from './targets.js';

/**
 * Profiles of wslb under the benchmark's own load: a CPU profile of the handshake scenario, one
 * of the 1,000-connection echo, one of bulk, and a heap snapshot at the idle-tunnel peak. Each runs on a fresh
 * wslb so that the figures are not mixed.
 */

interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
  }>;
  samples: number[];
}

/** Self time per function, as a share of all samples the profile took (idle excluded). */
export function topFunctions(profile: CpuProfile, limit = 15): string[][] {
  const self = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)' || hits === 0) continue;
    total += hits;
    const file = url
      .replace(/^file:\/\//, '')
      .replace(/^.*\/node_modules\/(\.pnpm\/[^/]+\/node_modules\/)?/, '');
    const where = url ? `${file.replace(/^.*\/(packages|plugins)\//, '$1/')}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + hits);
  }
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, hits]) => [name, `${((100 * hits) / total).toFixed(1)}%`]);
}

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

type HeapGroups = Map<string, { count: number; bytes: number }>;

/** JS heap objects grouped by constructor (self sizes; memory outside the JS heap is not in it). */
export function heapGroups(snapshot: HeapSnapshot): HeapGroups {
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const groups: HeapGroups = new Map();
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt]!]!;
    const name = snapshot.strings[snapshot.nodes[i + nameAt]!]!;
    const key =
      type === 'object' || type === 'closure' || type === 'native' ? `${name} (${type})` : `(${type})`;
    const g = groups.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += snapshot.nodes[i + sizeAt]!;
    groups.set(key, g);
  }
  return groups;
}

/** What the tunnels added to the heap, per tunnel: peak minus baseline, largest first. */
export function heapPerTunnel(
  baseline: HeapGroups,
  peak: HeapGroups,
  tunnels: number,
  limit = 15,
): string[][] {
  const rows: Array<[string, number, number]> = [];
  let total = 0;
  for (const [key, g] of peak) {
    const before = baseline.get(key) ?? { count: 0, bytes: 0 };
    const bytes = (g.bytes - before.bytes) / tunnels;
    total += bytes;
    rows.push([key, (g.count - before.count) / tunnels, bytes]);
  }
  rows.sort((a, b) => b[2] - a[2]);
  return [
    ...rows.slice(0, limit).map(([key, count, bytes]) => [key, formatNumber(count), formatNumber(bytes)]),
    ['all JS heap objects', '', formatNumber(total)],
  ];
}

function newest(dir: string, suffix: string): string | undefined {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(suffix))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return files[0];
}

/** Waits until the n-th heap snapshot exists and stopped growing (the process writes it in one go). */
async function waitForSnapshot(dir: string, n: number): Promise<string> {
  let last = -1;
  for (let i = 0; i < 600; i++) {
    await sleep(500);
    const files = readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot'));
    if (files.length < n) continue;
    const file = newest(dir, '.heapsnapshot')!;
    const size = statSync(file).size;
    if (size > 0 && size === last) return file;
    last = size;
  }
  throw new Error('no heap snapshot written');
}

async function startProfiled(
  key: TargetKey,
  backends: Backends,
  dir: string,
  args: string[],
): Promise<RunningTarget> {
  mkdirSync(dir, { recursive: true });
  const started = await startTarget(key, { workDir: dir, backendPorts: backends.ports, wslbNodeArgs: args });
  if ('unavailable' in started) throw new Error(started.unavailable);
  return started;
}

export async function profileWslb(
  key: TargetKey,
  gens: Generator[],
  backends: Backends,
  dir: string,
  settings: Settings,
  log: (line: string) => void,
): Promise<string> {
  log(`\nprofiling ${key}`);
  const parts: string[] = [];
  const cpuRuns: Array<{ title: string; run: (t: RunningTarget) => Promise<unknown> }> = [
    { title: 'handshakes', run: (t) => runHandshakes(gens, t, backends, settings) },
    { title: 'echo 64 B x1000', run: (t) => runEcho('e1000', gens, t, backends, settings, 1000, 64, 1) },
    {
      title: 'bulk 64 KiB',
      run: (t) =>
        runEcho(
          'bulk',
          gens,
          t,
          backends,
          settings,
          settings.bulkConnections,
          64 * 1024,
          settings.bulkWindow,
        ),
    },
  ];
  for (const { title, run } of cpuRuns) {
    const profDir = join(dir, title.replace(/\W+/g, '-'));
    const target = await startProfiled(key, backends, profDir, ['--cpu-prof', `--cpu-prof-dir=${profDir}`]);
    await run(target);
    await target.stop();
    const file = newest(join(profDir, key), '.cpuprofile') ?? newest(profDir, '.cpuprofile');
    if (!file) throw new Error(`no CPU profile in ${profDir}`);
    const rows = topFunctions(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
    parts.push(
      `### CPU, ${title} (self time, share of busy samples)\n\n${formatTable(['function', 'self'], rows)}`,
    );
    log(`  ${title}: ${file}`);
  }
  const heapDir = join(dir, 'heap');
  const target = await startProfiled(key, backends, heapDir, [
    '--heapsnapshot-signal=SIGUSR2',
    `--diagnostic-dir=${heapDir}`,
  ]);
  const snapshots: string[] = [];
  const takeSnapshot = async (t: RunningTarget): Promise<void> => {
    process.kill(t.pid!, 'SIGUSR2');
    snapshots.push(await waitForSnapshot(heapDir, snapshots.length + 1));
  };
  const { figures } = await runIdle(gens, target, backends, settings, {
    atBaseline: takeSnapshot,
    atPeak: takeSnapshot,
  });
  await target.stop();
  const tunnels = figures.idle_tunnels ?? settings.tunnels;
  const [before, after] = snapshots.map((f) =>
    heapGroups(JSON.parse(readFileSync(f, 'utf8')) as HeapSnapshot),
  );
  parts.push(
    `### Heap per idle tunnel (${tunnels} tunnels; snapshot at the peak minus the one before opening them)\n\n` +
      formatTable(
        ['constructor (type)', 'count/tunnel', 'bytes/tunnel'],
        heapPerTunnel(before!, after!, tunnels),
      ),
  );
  const snapshotFile = snapshots.join(', ');
  log(`  heap snapshot: ${snapshotFile}`);
  return parts.join('\n\n');
}
