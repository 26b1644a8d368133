import { type PluginSchemaEntry, buildConfigSchema, loadPluginModule } from '@wslb/core';

/** The built-in plugins whose option schemas --print-schema includes when installed. */
export const BUILT_IN_PLUGINS = [
  'round-robin',
  'least-connections',
  'ip-hash',
  'health-check',
  'sticky-sessions',
];

/** The JSON Schema of the whole config file, with every installed built-in plugin's options. */
export async function fullSchema(base: string): Promise<object> {
  const entries: PluginSchemaEntry[] = [];
  for (const name of BUILT_IN_PLUGINS) {
    try {
      const mod = await loadPluginModule(name, base, []);
      const schema = mod.schema ?? (typeof mod.default === 'function' ? mod.default.schema : undefined);
      if (schema) entries.push({ use: name, schema }, { use: `@wslb/${name}`, schema });
    } catch {
      // Not installed: its options are not described.
    }
  }
  return buildConfigSchema(entries);
}
