import { execFileSync, spawnSync } from 'node:child_process';

/** Whether a program is on the PATH (or in /usr/sbin, where Debian puts nginx and haproxy). */
export function which(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const result = spawnSync('test', ['-x', `${dir}/${program}`]);
    if (result.status === 0) return `${dir}/${program}`;
  }
  return undefined;
}

/**
 * Installs nginx and HAProxy with apt-get when they are missing (root only; non-interactive; the
 * packages' services are not left running). Returns what could not be installed and why.
 */
export function ensureProxies(log: (line: string) => void): Map<string, string> {
  const missing = ['nginx', 'haproxy'].filter((p) => !which(p));
  const problems = new Map<string, string>();
  if (missing.length === 0) return problems;
  if (process.getuid?.() !== 0 || !which('apt-get')) {
    for (const p of missing) problems.set(p, `${p} not installed (apt-get needs root)`);
    return problems;
  }
  log(`installing ${missing.join(', ')} with apt-get...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
      stdio: 'ignore',
      env,
    });
  } catch (err) {
    for (const p of missing) problems.set(p, `apt-get install ${p} failed: ${(err as Error).message}`);
    return problems;
  }
  // Packages start their service where an init system runs; the benchmark starts its own.
  for (const p of missing) {
    spawnSync('service', [p, 'stop'], { stdio: 'ignore' });
    if (!which(p)) problems.set(p, `${p} still missing after apt-get install`);
  }
  return problems;
}

/** First line of a command's output, for the machine description. */
export function versionOf(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  const text = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
  return text.split('\n')[0] ?? 'unknown';
}
