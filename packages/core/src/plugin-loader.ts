import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WslbError } from './errors.js';
import type { PluginEntry } from './config.js';
import type { PluginModule } from './plugin.js';

/** `round-robin` -> `@wslb/round-robin`; anything else is an import specifier. */
export function pluginSpecifier(use: string): string {
  return /^[a-z0-9][a-z0-9-]*$/.test(use) && !use.startsWith('wslb-plugin-') ? `@wslb/${use}` : use;
}

type ExportsField = string | null | { [key: string]: ExportsField } | ExportsField[];

function exportTarget(field: ExportsField | undefined): string | undefined {
  if (typeof field === 'string') return field;
  if (!field || Array.isArray(field)) return undefined;
  if ('.' in field) return exportTarget(field['.']);
  for (const condition of ['import', 'node', 'default']) {
    const target = exportTarget(field[condition]);
    if (target) return target;
  }
  return undefined;
}

function packageEntry(pkgDir: string, subpath: string): string {
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as {
    exports?: ExportsField;
    main?: string;
  };
  if (subpath) return join(pkgDir, subpath);
  const target = exportTarget(pkg.exports) ?? pkg.main ?? 'index.js';
  return join(pkgDir, target);
}

/**
 * Resolves an import specifier from a folder the way Node resolves a package import: walking up
 * node_modules folders and honouring the package's `exports` (import condition) or `main`.
 */
export function resolvePlugin(specifier: string, base: string): string | undefined {
  if (specifier.startsWith('.') || isAbsolute(specifier)) {
    const file = resolvePath(base, specifier);
    if (existsSync(join(file, 'package.json'))) return packageEntry(file, '');
    return existsSync(file) ? file : undefined;
  }
  const parts = specifier.split('/');
  const nameLength = specifier.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, nameLength).join('/');
  const subpath = parts.slice(nameLength).join('/');
  for (let dir = resolvePath(base); ; dir = dirname(dir)) {
    const pkgDir = join(dir, 'node_modules', name);
    if (existsSync(join(pkgDir, 'package.json'))) return packageEntry(pkgDir, subpath);
    if (dirname(dir) === dir) return undefined;
  }
}

/** This package's folder: the @wslb/* plugins installed beside the core are found from it. */
const CORE_DIR = fileURLToPath(new URL('..', import.meta.url));

/**
 * Imports a plugin module named in a config, resolved like an import from `base` (the config
 * file's folder), then from each of `fallbacks` (e.g. the binary's own folder, which has the
 * built-in plugins), then from the working directory, then from where @wslb/core is installed.
 */
export async function loadPluginModule(
  use: string,
  base: string,
  fallbacks: readonly string[] = [],
): Promise<PluginModule> {
  const specifier = pluginSpecifier(use);
  let resolved: string | undefined;
  for (const from of [base, ...fallbacks, process.cwd(), CORE_DIR]) {
    resolved = resolvePlugin(specifier, from);
    if (resolved) break;
  }
  if (!resolved) {
    throw new WslbError(
      'WSLB_ERR_PLUGIN_NOT_FOUND',
      `cannot find plugin "${use}" (${specifier}) from ${base}; install it or give a relative path`,
    );
  }
  try {
    return (await import(pathToFileURL(resolved).href)) as PluginModule;
  } catch (err) {
    throw new WslbError(
      'WSLB_ERR_PLUGIN_NOT_FOUND',
      `cannot load plugin "${use}" from ${resolved}: ${(err as Error).message.split('\n')[0]}`,
      { cause: err },
    );
  }
}

export function pluginEntry(spec: string | PluginEntry): PluginEntry {
  return typeof spec === 'string' ? { use: spec } : spec;
}
