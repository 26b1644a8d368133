import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  type ConfigIssue,
  type PluginEntry,
  type PluginSchemaEntry,
  type Plugin,
  type ProxyConfig,
  checkPlugins,
  instantiatePlugin,
  type PluginModule,
  loadPluginModule,
  pluginConfigIssues,
  validateConfig,
} from '@wslb/core';
import { adminConfigIssue } from './admin/config-rules.js';
import { configFileIssues } from './config-files.js';

/** A config that could not be read or is invalid: the binary exits 2 with these lines. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  /** WSLB_ERR_CONFIG_INVALID, or the code of the one fault behind it (a plugin not found). */
  readonly code: string;
  constructor(message: string, issues: readonly ConfigIssue[] = [], code = 'WSLB_ERR_CONFIG_INVALID') {
    super(message);
    this.issues = issues;
    this.code = code;
  }
}

export interface LoadedConfig {
  file: string;
  config: ProxyConfig;
}

function lineAndColumn(text: string, position: number): string {
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  const column = position - before.lastIndexOf('\n');
  return `line ${line}, column ${column}`;
}

function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const position = /position (\d+)/.exec(message);
    const where = position ? ` at ${lineAndColumn(text, Number(position[1]))}` : '';
    throw new ConfigError(
      `${file}: invalid JSON${where}: ${message.replace(/ in JSON at position \d+.*$/, '')}`,
    );
  }
}

/**
 * Reads, parses and validates a config file: the root schema, then each plugin loaded to get its
 * options schema, all validated in one pass so that every error is reported with its JSON path.
 */
export async function loadConfig(path: string, pluginPaths: readonly string[] = []): Promise<LoadedConfig> {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const raw = parseJson(file, text);
  const rootIssues = validateConfig(raw);
  if (rootIssues.length > 0) throw new ConfigError(`${file}: invalid config`, rootIssues);
  const config = raw as ProxyConfig;
  const adminIssue = adminConfigIssue(config.admin);
  if (adminIssue) throw new ConfigError(`${file}: invalid config`, [{ path: '/admin', message: adminIssue }]);
  const base = dirname(file);

  const schemas: PluginSchemaEntry[] = [];
  const loadIssues: ConfigIssue[] = [];
  const modules: PluginModule[] = [];
  const plugins = (config.plugins ?? []) as Array<string | PluginEntry>;
  for (let i = 0; i < plugins.length; i++) {
    const spec = plugins[i]!;
    const use = typeof spec === 'string' ? spec : spec.use;
    try {
      const mod = await loadPluginModule(use, base, pluginPaths);
      modules[i] = mod;
      const schema = mod.schema ?? (typeof mod.default === 'function' ? mod.default.schema : undefined);
      if (schema && !schemas.some((s) => s.use === use)) schemas.push({ use, schema });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      loadIssues.push({
        path: typeof spec === 'string' ? `/plugins/${i}` : `/plugins/${i}/use`,
        message: typeof code === 'string' ? `${code}: ${(err as Error).message}` : (err as Error).message,
      });
    }
  }
  if (loadIssues.length > 0) throw new ConfigError(`${file}: invalid config`, loadIssues);
  // Bare-string plugins get their defaults; validate them as `{ use }` entries.
  const normalized = {
    ...config,
    plugins: plugins.map((p) =>
      typeof p === 'string' ? { use: p, options: {} } : { ...p, options: p.options ?? {} },
    ),
  };
  const issues = validateConfig(normalized, schemas);
  // Then what each plugin finds wrong with its options in this config (e.g. with several workers).
  if (issues.length === 0) {
    normalized.plugins.forEach((entry, i) =>
      issues.push(...pluginConfigIssues(modules[i]!, entry.options, i, config)),
    );
  }
  if (issues.length === 0) issues.push(...(await configFileIssues(config, base)));
  if (issues.length > 0) throw new ConfigError(`${file}: invalid config`, issues);
  return { file, config: { ...config, pluginBase: base } };
}

/**
 * The registration checks the proxy runs at startup (unique names, declared dependencies, core
 * range), for `--check`: each plugin is made by its factory but not applied.
 */
export async function checkConfigPlugins(
  config: ProxyConfig,
  pluginPaths: readonly string[] = [],
): Promise<void> {
  const specs = (config.plugins ?? []) as Array<string | PluginEntry>;
  const plugins: Plugin[] = [];
  for (let i = 0; i < specs.length; i++) {
    const spec = specs[i]!;
    const entry = typeof spec === 'string' ? { use: spec } : spec;
    const mod = await loadPluginModule(entry.use, config.pluginBase ?? process.cwd(), pluginPaths);
    plugins.push(await instantiatePlugin(mod, entry, i, config));
  }
  checkPlugins(plugins);
}
