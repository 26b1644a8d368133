import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { validateConfig, validatePluginOptions } from '../src/validate.js';

describe('validateConfig', () => {
  it('accepts the SPEC example shape', () => {
    const issues = validateConfig({
      listen: { host: '0.0.0.0', port: 8080 },
      mode: 'http',
      backends: [
        { id: 'a', url: 'ws://127.0.0.1:9001', weight: 2 },
        { id: 'b', url: 'ws://127.0.0.1:9002', maxConnections: 10000, backup: false },
      ],
      plugins: ['least-connections', { use: 'health-check', options: { type: 'ws' } }],
      timeouts: {
        connect: 5000,
        request: 10000,
        handshake: 10000,
        response: 60000,
        idle: 0,
        halfClose: 30000,
        drain: 25000,
        removedBackend: 0,
      },
      retries: 2,
      limits: { connections: 0, perClient: 0, headerSize: 16384 },
      trustedProxies: ['10.0.0.0/8'],
      admin: { host: '127.0.0.1', port: 9901, token: 't' },
      log: { level: 'info', access: 0.5 },
      workers: 'auto',
    });
    assert.deepEqual(issues, []);
  });

  it('names the JSON path of each problem', () => {
    const issues = validateConfig({
      listen: [{ port: 70000 }],
      backends: [{ url: 'ftp://x' }, { id: 'a', url: 'ws://h:1' }, { id: 'a', url: 'ws://h:2' }],
      workers: 'many',
      log: { access: 2 },
    });
    const lines = issues.map((i) => `${i.path}: ${i.message}`);
    assert.ok(lines.includes('/listen/0/port: must be <= 65535'), lines.join('\n'));
    assert.ok(
      lines.some((l) => l.startsWith('/backends/0/url: must match pattern')),
      lines.join('\n'),
    );
    assert.ok(lines.includes('/workers: must be "auto"'), lines.join('\n'));
    assert.ok(lines.includes('/log/access: must be <= 1'), lines.join('\n'));
  });

  it('reports duplicate backend ids', () => {
    const issues = validateConfig({
      backends: [
        { id: 'a', url: 'ws://h:1' },
        { id: 'a', url: 'ws://h:2' },
      ],
    });
    assert.deepEqual(issues, [
      { path: '/backends/1/id', message: 'duplicate backend id "a" (also /backends/0)' },
    ]);
  });

  it('reports backend URLs that pass the uri format but cannot be dialled', () => {
    const issues = validateConfig({
      backends: [
        { url: 'ws://127.0.0.1:99999' },
        { url: 'tcp://127.0.0.1' },
        { url: 'ws://127.0.0.1:0' },
        { url: 'wss://example.com' },
      ],
    });
    assert.deepEqual(
      issues.map((i) => i.path),
      ['/backends/0/url', '/backends/1/url', '/backends/2/url'],
    );
    assert.match(issues[0]!.message, /port 1-65535/);
    assert.match(issues[1]!.message, /needs a port/);
  });

  it('validates plugin options with the plugin schema under its path', () => {
    const schema = {
      type: 'object',
      additionalProperties: false,
      properties: { choices: { type: 'integer', minimum: 1 } },
    };
    assert.deepEqual(validatePluginOptions(schema, { choices: 0 }, '/plugins/2/options'), [
      { path: '/plugins/2/options/choices', message: 'must be >= 1' },
    ]);
  });
});

describe('the validator between validations', () => {
  const ajvFiles = (): string[] =>
    Object.keys(createRequire(import.meta.url).cache).filter((f) => /[\\/]node_modules[\\/]ajv[\\/]/.test(f));

  it('lets ajv go a second after the last validation, and loads it again for the next', async () => {
    assert.deepEqual(validateConfig({ backends: [{ url: 'ws://127.0.0.1:1' }] }), []);
    assert.ok(ajvFiles().length > 0, 'ajv is loaded while validating');
    await new Promise((resolve) => setTimeout(resolve, 1300));
    assert.deepEqual(ajvFiles(), [], 'nothing of ajv stays in the require cache');
    // A reload validates again, with the same answers.
    assert.deepEqual(
      validateConfig({ backends: [{ url: 'nope' }] }).map((i) => i.path),
      ['/backends/0/url', '/backends/0/url'],
    );
    assert.ok(ajvFiles().length > 0, 'ajvFiles().length > 0');
  });
});
