import { createRequire } from 'node:module';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import { configSchema } from './config-schema.js';

/*
 * One ajv instance validates the whole file: the root schema and every plugin schema compile
 * there. ajv is loaded when validation runs (start-up, a reload) and let go a second after the last
 * one, modules included: kept, it would be about a megabyte of the proxy's heap for its whole
 * life, and V8 starts full (mark-compact) collections on external-memory pressure only once the
 * old generation passes 8 MiB. Below that, the read buffers of a bulk transfer are swept by
 * young-generation collections alone, which halves the proxy's CPU per megabyte.
 */
const IDLE_RELEASE_MS = 1000;
/** Where ajv and what it requires live; their require-cache entries go on release. */
const AJV_FILES =
  /[\\/]node_modules[\\/](?:ajv|ajv-formats|fast-uri|fast-deep-equal|json-schema-traverse|require-from-string)[\\/]/;

let ajv: Ajv | undefined;
// Keyed by the schema's text: the checks of one start-up compile each schema once.
let compiled = new Map<string, ValidateFunction>();
let releaseTimer: NodeJS.Timeout | undefined;

function release(): void {
  ajv = undefined;
  compiled = new Map();
  releaseTimer = undefined;
  const cache = createRequire(import.meta.url).cache;
  for (const file of Object.keys(cache)) if (AJV_FILES.test(file)) delete cache[file];
}

function validator(): Ajv {
  if (releaseTimer) releaseTimer.refresh();
  else {
    releaseTimer = setTimeout(release, IDLE_RELEASE_MS);
    releaseTimer.unref();
  }
  if (!ajv) {
    // A require of its own each time: the module object it hangs children on goes with it.
    const load = createRequire(import.meta.url);
    const { Ajv: AjvClass } = load('ajv') as typeof import('ajv');
    const addFormats = load('ajv-formats') as (instance: Ajv) => Ajv;
    ajv = new AjvClass({ allErrors: true, strict: false, useDefaults: false });
    addFormats(ajv);
  }
  return ajv;
}

export interface PluginSchemaEntry {
  /** The `use` string as written in the config (or the plugin's name). */
  use: string;
  schema: object;
}

export interface ConfigIssue {
  /** JSON pointer into the config, `/` for the root. */
  path: string;
  message: string;
}

/** The schema of the whole config file with the options schema of each named plugin included. */
export function buildConfigSchema(plugins: readonly PluginSchemaEntry[] = []): object {
  if (plugins.length === 0) return configSchema;
  const byUse = plugins.map(({ use, schema }) => ({
    if: { type: 'object', required: ['use'], properties: { use: { const: use } } },
    then: { properties: { options: schema } },
  }));
  const items = { ...configSchema.properties.plugins.items, allOf: byUse };
  return {
    ...configSchema,
    properties: {
      ...configSchema.properties,
      plugins: { ...configSchema.properties.plugins, items },
    },
  };
}

function compile(schema: object): ValidateFunction {
  const instance = validator();
  const key = JSON.stringify(schema);
  let fn = compiled.get(key);
  if (!fn) {
    fn = instance.compile(schema);
    compiled.set(key, fn);
  }
  return fn;
}

function describe(err: ErrorObject): string {
  const params = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'additionalProperties':
      return `unknown property "${String(params.additionalProperty)}"`;
    case 'enum':
      return `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `must be ${JSON.stringify(params.allowedValue)}`;
    default:
      return err.message ?? err.keyword;
  }
}

export function formatIssues(errors: readonly ErrorObject[] | null | undefined): ConfigIssue[] {
  const seen = new Set<string>();
  const issues: ConfigIssue[] = [];
  for (const err of errors ?? []) {
    // if/then/else wrappers repeat what their branch already said.
    if (err.keyword === 'if') continue;
    const issue = { path: err.instancePath || '/', message: describe(err) };
    const key = `${issue.path}\0${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}

/** Validates a config object (plugins as names/entries) against the root schema plus plugin schemas. */
export function validateConfig(config: unknown, plugins: readonly PluginSchemaEntry[] = []): ConfigIssue[] {
  const validate = compile(plugins.length === 0 ? configSchema : buildConfigSchema(plugins));
  if (validate(config)) return semanticIssues(config as Record<string, unknown>);
  return formatIssues(validate.errors);
}

/** Validates one plugin's options against its schema, reporting paths under `prefix`. */
export function validatePluginOptions(schema: object, options: unknown, prefix = ''): ConfigIssue[] {
  const validate = compile(schema);
  if (validate(options ?? {})) return [];
  return formatIssues(validate.errors).map((i) => ({
    path: `${prefix}${i.path === '/' ? '' : i.path}` || '/',
    message: i.message,
  }));
}

/**
 * What makes a backend URL unusable though it passed the schema's "uri" format: a port out of
 * range (`ws://h:99999`), no host, or `tcp://` without a port.
 */
function backendUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'not a valid URL (host and port 1-65535 expected)';
  }
  if (parsed.hostname === '') return 'has no host';
  if (parsed.protocol === 'tcp:' && parsed.port === '') return 'tcp:// needs a port';
  if (parsed.port === '0') return 'port 0 cannot be dialled';
  return undefined;
}

/** Rules a JSON schema cannot express: unique backend ids, URLs that can be dialled. */
function semanticIssues(config: Record<string, unknown>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const backends = Array.isArray(config.backends) ? (config.backends as Array<Record<string, unknown>>) : [];
  const seen = new Map<string, number>();
  backends.forEach((b, i) => {
    const urlProblem = typeof b.url === 'string' ? backendUrlProblem(b.url) : undefined;
    if (urlProblem) issues.push({ path: `/backends/${i}/url`, message: urlProblem });
    const id = typeof b.id === 'string' ? b.id : undefined;
    if (id === undefined) return;
    const first = seen.get(id);
    if (first !== undefined) {
      issues.push({
        path: `/backends/${i}/id`,
        message: `duplicate backend id "${id}" (also /backends/${first})`,
      });
    } else {
      seen.set(id, i);
    }
  });
  return issues;
}

export function formatIssueList(issues: readonly ConfigIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join('\n');
}
