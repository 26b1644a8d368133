// The docs are part of the product: every error code is documented as the catalog defines it,
// every TypeScript snippet compiles against the real packages, and snippets that are test files
// run and pass.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { ERRORS, type ErrorDefinition } from '@wslb/core';
import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Markdown files whose ```ts blocks are compiled (and run, when named *.test.ts). */
const DOCS = [
  'docs/hooks.md',
  'docs/writing-a-plugin.md',
  'docs/errors.md',
  'packages/testing/README.md',
  'examples/wslb-plugin-least-latency/README.md',
  'examples/compose-in-code/README.md',
];

interface Block {
  doc: string;
  lang: string;
  /** 1-based line of the first code line in the markdown file. */
  line: number;
  /** The `<!-- ... -->` comment on the line before the fence, if any. */
  marker: string | undefined;
  code: string;
}

function codeBlocks(doc: string): Block[] {
  const lines = readFileSync(join(root, doc), 'utf8').split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const marker = /^<!--\s*(.+?)\s*-->$/.exec(lines[i - 1] ?? '')?.[1];
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end] !== '```') end++;
    assert.ok(end < lines.length, `${doc}:${i + 1}: code block never closed`);
    blocks.push({ doc, lang: open[1]!, line: start + 1, marker, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return blocks;
}

/** Snippets marked `<!-- apply -->` are the body of a plugin's apply(proxy). */
const APPLY_PRELUDE = [
  "import { type Backend, type ConnectionContext, type Plugin, STAGE_BALANCE, STAGE_OVERRIDE, WslbError } from '@wslb/core';",
  'export const plugin: Plugin = {',
  "  name: 'doc-example',",
  '  apply(proxy) {',
];
const APPLY_END = [
  '  },',
  '};',
  'export type Unused = [Backend, ConnectionContext, WslbError, typeof STAGE_BALANCE];',
];

interface Snippet {
  block: Block;
  /** Path relative to the doc's own folder of snippets. */
  file: string;
  text: string;
  /** Lines added before the block's first line. */
  offset: number;
}

function snippetsOf(doc: string): Snippet[] {
  return codeBlocks(doc)
    .filter((b) => b.lang === 'ts')
    .map((block) => {
      if (block.marker === 'apply') {
        const text = [...APPLY_PRELUDE, block.code, ...APPLY_END].join('\n');
        return { block, file: `apply-${block.line}.ts`, text, offset: APPLY_PRELUDE.length };
      }
      const named = /^file:\s*(\S+)$/.exec(block.marker ?? '')?.[1];
      return { block, file: named ?? `snippet-${block.line}.ts`, text: `${block.code}\n`, offset: 0 };
    });
}

/** This process's environment without what the test runner set for its own children. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  return env;
}

const slug = (doc: string): string => doc.replace(/\.md$/, '').replace(/[^a-z0-9]+/gi, '-');

describe('docs/errors.md', () => {
  const table = new Map<string, { status: number; closeCode: number | undefined }>();
  const text = readFileSync(join(root, 'docs/errors.md'), 'utf8');
  for (const match of text.matchAll(/^\| `(WSLB_ERR_[A-Z0-9_]+)` \| (\d{3}) \| (\d{4}|-) \|/gm)) {
    assert.ok(!table.has(match[1]!), `${match[1]} is listed twice`);
    table.set(match[1]!, {
      status: Number(match[2]),
      closeCode: match[3] === '-' ? undefined : Number(match[3]),
    });
  }
  const catalog = ERRORS as Record<string, ErrorDefinition>;

  it('lists every code of the catalog with its HTTP status and close code', () => {
    for (const [code, def] of Object.entries(catalog)) {
      assert.deepEqual(
        table.get(code),
        { status: def.status, closeCode: def.closeCode },
        `${code} in errors.md`,
      );
    }
  });

  it('lists no code the catalog does not have', () => {
    assert.deepEqual(
      [...table.keys()].filter((code) => !(code in catalog)),
      [],
    );
  });

  it('knows every WSLB_ERR_* code that the sources and docs use', () => {
    const unknown = new Set<string>();
    const scan = (file: string): void => {
      for (const [code] of readFileSync(file, 'utf8').matchAll(/WSLB_ERR_[A-Z0-9_]*[A-Z0-9]/g)) {
        if (!(code in catalog)) unknown.add(`${relative(root, file)}: ${code}`);
      }
    };
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        if (entry.name === 'node_modules' || entry.name === 'dist') continue;
        const full = join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if (/\.(ts|mjs|js)$/.test(entry.name)) scan(full);
      }
    };
    for (const group of ['packages', 'plugins', 'examples']) {
      for (const pkg of readdirSync(join(root, group))) {
        const src = join(root, group, pkg, 'src');
        try {
          walk(src);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
    }
    for (const doc of DOCS) scan(join(root, doc));
    assert.deepEqual([...unknown], []);
  });
});

describe('code in the docs', { timeout: 120_000 }, () => {
  it('has only JSON blocks that parse', () => {
    for (const doc of DOCS) {
      for (const block of codeBlocks(doc).filter((b) => b.lang === 'json')) {
        assert.doesNotThrow(() => JSON.parse(block.code), `${doc}:${block.line}`);
      }
    }
  });

  it('has TypeScript snippets that compile against the real packages', () => {
    // Each doc's snippets live, virtually, in a folder under test/, so that they import
    // @wslb/core, @wslb/testing and the example plugin exactly as a user would.
    const files = new Map<string, Snippet>();
    for (const doc of DOCS) {
      for (const snippet of snippetsOf(doc))
        files.set(join(root, 'test', '.docs', slug(doc), snippet.file), snippet);
    }
    assert.ok(files.size >= 15, `only ${files.size} snippets found`);
    const options: ts.CompilerOptions = {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2023.d.ts'],
      types: ['node'],
      typeRoots: [join(root, 'node_modules', '@types')],
      strict: true,
      noUncheckedIndexedAccess: true,
      verbatimModuleSyntax: true,
      isolatedModules: true,
      skipLibCheck: true,
      // As docs/writing-a-plugin.md sets it up: a published plugin ships .d.ts files, so every
      // exported value needs a type that can be named (TS2742 otherwise).
      declaration: true,
      noEmit: true,
    };
    const host = ts.createCompilerHost(options);
    const { fileExists, readFile, getSourceFile, directoryExists } = host;
    host.fileExists = (f) => files.has(f) || fileExists.call(host, f);
    host.readFile = (f) => files.get(f)?.text ?? readFile.call(host, f);
    host.directoryExists = (d) =>
      [...files.keys()].some((f) => f.startsWith(`${d}/`)) || (directoryExists?.call(host, d) ?? true);
    host.getSourceFile = (f, version, onError, create) => {
      const snippet = files.get(f);
      return snippet
        ? ts.createSourceFile(f, snippet.text, version, true)
        : getSourceFile.call(host, f, version, onError, create);
    };
    const program = ts.createProgram([...files.keys()], options, host);
    const problems = ts.getPreEmitDiagnostics(program).map((d) => {
      const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      const snippet = d.file ? files.get(d.file.fileName) : undefined;
      if (!d.file || d.start === undefined) return message;
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      if (!snippet) return `${d.file.fileName}:${line + 1}: ${message}`;
      return `${snippet.block.doc}:${snippet.block.line + line - snippet.offset}: ${message}`;
    });
    assert.deepEqual(problems, []);
  });

  it('has test snippets that pass when run', () => {
    const tsx = fileURLToPath(import.meta.resolve('tsx'));
    for (const doc of DOCS) {
      const snippets = snippetsOf(doc);
      const tests = snippets.filter((s) => s.file.endsWith('.test.ts'));
      if (tests.length === 0) continue;
      // The doc's files in a folder of their own, with the repo's packages installed.
      const dir = mkdtempSync(join(tmpdir(), `wslb-${slug(doc)}-`));
      try {
        symlinkSync(join(root, 'test', 'node_modules'), join(dir, 'node_modules'), 'dir');
        writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
        for (const snippet of snippets) {
          mkdirSync(dirname(join(dir, snippet.file)), { recursive: true });
          writeFileSync(join(dir, snippet.file), snippet.text);
        }
        const run = spawnSync(
          process.execPath,
          ['--import', tsx, '--test', '--test-reporter=spec', ...tests.map((s) => s.file)],
          { cwd: dir, encoding: 'utf8', timeout: 60_000, env: childEnv() },
        );
        assert.equal(run.status, 0, `${doc}: its test snippets failed\n${run.stdout}\n${run.stderr}`);
        assert.match(run.stdout, /ℹ fail 0/);
        assert.doesNotMatch(run.stdout, /ℹ pass 0\b/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});
