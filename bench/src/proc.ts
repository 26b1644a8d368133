import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Readers of /proc: CPU time and resident memory of a process and its children (Linux only). */

let ticks: number | undefined;

/** Clock ticks per second of utime/stime in /proc/<pid>/stat. */
export function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces). */
function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** User + system CPU time of one process (all its threads), in microseconds. */
export function cpuMicros(pid: number): number {
  const f = statFields(pid);
  if (!f) return 0;
  // After the name: state(3) ppid(4) ... utime(14) stime(15), so indexes 11 and 12 here.
  return ((Number(f[11]) + Number(f[12])) * 1e6) / clockTicks();
}

/** The pid and every descendant of it (nginx's master and workers, a shell's exec'd program). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const f = statFields(pid);
    if (!f) continue;
    const ppid = Number(f[1]);
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(pid);
    for (const child of children.get(pid) ?? []) stack.push(child);
  }
  return out;
}

/** Resident set size of one process in KiB (VmRSS), 0 when it is gone. */
export function rssKiB(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

export function treeCpuMicros(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) sum += cpuMicros(pid);
  return sum;
}

export function treeRssKiB(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) sum += rssKiB(pid);
  return sum;
}

/** CPU time all processes of the machine spent busy (every core), in microseconds. */
export function machineBusyMicros(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const [, user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  void idle;
  void iowait;
  return (busy * 1e6) / clockTicks();
}
