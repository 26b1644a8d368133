// Installs the workspace with the pinned pnpm and builds it. Idempotent; with
// --if-needed it returns at once when nothing changed since the last setup.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pnpm } from './pnpm.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const stampFile = join(root, '.wslb-setup-stamp');

function newestInputTime(dir, depth = 0) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.')) continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (depth < 6) newest = Math.max(newest, newestInputTime(full, depth + 1));
    } else if (/\.(ts|mts|json|yaml)$/.test(entry.name)) {
      newest = Math.max(newest, statSync(full).mtimeMs);
    }
  }
  return newest;
}

const ifNeeded = process.argv.includes('--if-needed');
if (ifNeeded && existsSync(stampFile) && existsSync(join(root, 'node_modules', '.bin', 'wslb'))) {
  const stamp = Number(readFileSync(stampFile, 'utf8'));
  if (stamp >= newestInputTime(root)) process.exit(0);
}

const frozen = process.env.CI ? ['--frozen-lockfile'] : [];
let status = pnpm(['install', '--prefer-offline', ...frozen]);
if (status !== 0) process.exit(status);
status = pnpm(['exec', 'tsc', '--build']);
if (status !== 0) process.exit(status);
writeFileSync(stampFile, String(Date.now()));
