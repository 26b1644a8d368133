import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Debian's Chromium, which the browser tests drive through playwright-core. */
export const CHROMIUM = '/usr/bin/chromium';

/** Flags for a quiet headless run: no sandbox (root in CI), no GPU, no network of its own. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Makes sure Debian's chromium is installed: installs it with apt-get when missing (as root).
 * Returns undefined when it is there, or the reason the browser tests must be skipped.
 */
export function ensureChromium(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  if (process.getuid?.() !== 0) {
    return `${CHROMIUM} is missing and installing it needs root: apt-get install -y chromium`;
  }
  console.log(`# ${CHROMIUM} is missing: installing Debian's chromium (apt-get)`);
  const result = spawnSync(
    'sh',
    [
      '-c',
      'apt-get update -o DPkg::Lock::Timeout=300 && ' +
        'apt-get install -y -o DPkg::Lock::Timeout=300 chromium',
    ],
    { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, encoding: 'utf8', timeout: 900_000 },
  );
  if (result.status === 0 && existsSync(CHROMIUM)) return undefined;
  const why =
    result.error?.message ?? (result.stderr || result.stdout || '').trim().split('\n').slice(-3).join(' ');
  return `chromium could not be installed (apt-get exit ${result.status}): ${why}`;
}
