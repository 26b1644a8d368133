// `npm test`: typecheck, lint, format check, then every test file with node's test runner
// (TypeScript through tsx). Files run in parallel processes; each test bounds its own time.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pnpm } from './pnpm.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const only = process.argv.slice(2);

function step(name, args) {
  console.log(`\n> ${name}`);
  const status = pnpm(args);
  if (status !== 0) {
    console.error(`${name} failed`);
    process.exit(status);
  }
}

function findTests(dir, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.')) continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) findTests(full, out);
    else if (entry.name.endsWith('.test.ts')) out.push(relative(root, full));
  }
  return out;
}

if (only.length === 0) {
  step('typecheck', ['exec', 'tsc', '--build']);
  step('lint', ['exec', 'eslint', '.', '--max-warnings', '0']);
  step('format', ['exec', 'prettier', '--check', '.', '--log-level', 'warn']);
}

const files = (
  only.length > 0
    ? only
    : ['packages', 'plugins', 'examples', 'test', 'bench'].flatMap((d) => findTests(join(root, d)))
)
  .filter((f) => statSync(join(root, f)).isFile())
  .sort();
if (files.some((f) => f.endsWith('dashboard-browser.test.ts'))) {
  console.log('\n> browser');
  spawnSync(process.execPath, ['--import', 'tsx', 'test/helpers/ensure-chromium.ts'], {
    cwd: root,
    stdio: 'inherit',
  });
}
console.log(`\n> tests (${files.length} files)`);
const result = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=2',
    '--test-timeout=120000',
    '--test-force-exit',
    '--test-reporter=spec',
    ...files,
  ],
  { cwd: root, stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test' } },
);
process.exit(result.status ?? 1);
