// Keeps docs/architecture.md §1 true: its lib table is the one statement of which lib may import which, and
// this file reads it (not a copy) and checks every import under libs/ and apps/ against it.
import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ARCHITECTURE = 'docs/architecture.md';
/** The offline verifier's entry point; nothing it reaches may need Nest, the database or the apps. */
const OFFLINE_VERIFIER = 'libs/audit/verify.ts';
const VERIFIER_FORBIDDEN_PACKAGES = [/^@nestjs\//, /^typeorm($|\/)/, /^pg($|\/)/, /^bullmq$/, /^ioredis$/];
const VERIFIER_FORBIDDEN_FOLDERS = ['libs/db/', 'libs/config/', 'apps/'];

/** One import statement: the importing file and what it names, both as repository paths (`/`-separated). */
interface ImportEdge {
  from: string;
  /** A repository path for a relative import, else the bare package name as written. */
  to: string;
}

/** Lib name (`audit`) → the lib names it may import. */
type ImportRules = Map<string, Set<string>>;

/** Which unit a repository path belongs to: a lib or app folder, `test`, or none (a file at libs/ top level, a package). */
function unitOf(path: string): { kind: 'lib' | 'app' | 'test' | 'other'; name: string } {
  const [top, name, ...rest] = path.split('/');
  if ((top === 'libs' || top === 'apps') && name !== undefined && rest.length > 0) {
    return { kind: top === 'libs' ? 'lib' : 'app', name };
  }
  if (top === 'test') return { kind: 'test', name: 'test' };
  return { kind: 'other', name: path };
}

const isSpec = (path: string): boolean => path.endsWith('.spec.ts');

/**
 * Reads the lib table of docs/architecture.md §1: rows `| \`libs/NAME\` | purpose | a, b |` (or `none`)
 * under a header whose last column is "may import". Throws when the table is missing or names an unknown lib.
 */
function parseImportRules(markdown: string): ImportRules {
  const lines = markdown.split('\n');
  const header = lines.findIndex((line) => /^\|\s*lib\s*\|.*\|\s*may import\s*\|\s*$/.test(line));
  if (header === -1) throw new Error('no "| lib | purpose | may import |" table found');
  const rules: ImportRules = new Map();
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((cell) => cell.trim());
    const lib = /^`libs\/([a-z-]+)`$/.exec(cells[0] ?? '')?.[1];
    if (lib === undefined || cells.length !== 3) throw new Error(`malformed lib table row: ${line}`);
    if (rules.has(lib)) throw new Error(`libs/${lib} has two rows`);
    const allowed = cells[2] === 'none' ? [] : cells[2].split(',').map((name) => name.trim());
    rules.set(lib, new Set(allowed));
  }
  for (const [lib, allowed] of rules) {
    for (const name of allowed) {
      if (!rules.has(name)) throw new Error(`libs/${lib} may import "${name}", which has no row`);
    }
  }
  return rules;
}

/** Every rule an edge can break, one message each; cycles are reported separately by libCycles. */
function importViolations(edges: readonly ImportEdge[], rules: ImportRules): string[] {
  const violations: string[] = [];
  for (const { from, to } of edges) {
    const source = unitOf(from);
    const target = unitOf(to);
    const where = `${from} imports ${to}`;
    if (target.kind === 'test' && !isSpec(from)) {
      violations.push(`${where}: only *.spec.ts files may import test/`);
    }
    if (source.kind === 'lib') {
      if (target.kind === 'app') violations.push(`${where}: libs never import apps`);
      if (target.kind === 'lib' && target.name !== source.name) {
        const allowed = rules.get(source.name);
        if (allowed === undefined)
          violations.push(`${where}: libs/${source.name} has no row in the lib table`);
        else if (!allowed.has(target.name)) {
          violations.push(`${where}: libs/${source.name} may not import libs/${target.name}`);
        }
      }
    }
    if (source.kind === 'app' && target.kind === 'app' && target.name !== source.name) {
      violations.push(`${where}: an app imports libs, never another app`);
    }
  }
  return violations;
}

/** Lib → libs it imports (or may import), from edges or from rules. */
function libGraph(edges: readonly ImportEdge[]): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const { from, to } of edges) {
    const source = unitOf(from);
    const target = unitOf(to);
    if (source.kind !== 'lib' || target.kind !== 'lib' || source.name === target.name) continue;
    if (!graph.has(source.name)) graph.set(source.name, new Set());
    graph.get(source.name)!.add(target.name);
  }
  return graph;
}

/** The strongly connected groups of more than one lib (Tarjan), each sorted: every one is an import cycle. */
function libCycles(graph: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  const index = new Map<string, number>();
  const lowLink = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    lowLink.set(node, index.get(node)!);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        lowLink.set(node, Math.min(lowLink.get(node)!, lowLink.get(next)!));
      } else if (onStack.has(next)) {
        lowLink.set(node, Math.min(lowLink.get(node)!, index.get(next)!));
      }
    }
    if (lowLink.get(node) !== index.get(node)) return;
    const group: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      group.push(member);
    } while (member !== node);
    if (group.length > 1) cycles.push(group.sort());
  };
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) visit(node);
  return cycles;
}

/** The cycles among the libs that `edges` connect, each with the imports that close it, for the message. */
function importCycles(edges: readonly ImportEdge[]): string[] {
  return libCycles(libGraph(edges)).map((group) => {
    const inGroup = edges.filter(({ from, to }) => {
      const source = unitOf(from);
      const target = unitOf(to);
      return (
        source.kind === 'lib' &&
        target.kind === 'lib' &&
        source.name !== target.name &&
        group.includes(source.name) &&
        group.includes(target.name)
      );
    });
    const examples = group.flatMap((lib) => {
      const edge = inGroup.find(({ from }) => unitOf(from).name === lib);
      return edge ? [`${edge.from} → ${edge.to}`] : [];
    });
    return `import cycle between ${group.map((lib) => `libs/${lib}`).join(', ')} (${examples.join('; ')})`;
  });
}

/** Every .ts/.tsx file under a folder, as repository paths. */
function sourceFiles(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && /\.tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts'))
    .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)).split('\\').join('/'))
    .filter((path) => !path.split('/').some((part) => part === 'node_modules' || part === 'dist'));
}

/** The imports of one file, `import type` and dynamic `import()` included; relative ones as repository paths. */
function importsOf(path: string): ImportEdge[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(join(ROOT, path), 'utf8'), true, true);
  return importedFiles.map(({ fileName }) => ({
    from: path,
    to: fileName.startsWith('.')
      ? relative(ROOT, resolve(ROOT, dirname(path), fileName))
          .split('\\')
          .join('/')
      : fileName,
  }));
}

/** The files reachable from `entry` through relative imports (`.js` specifiers name the `.ts` source). */
function reachableFrom(entry: string, edges: readonly ImportEdge[]): Set<string> {
  const byFile = new Map<string, string[]>();
  for (const { from, to } of edges) byFile.set(from, [...(byFile.get(from) ?? []), to]);
  const seen = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const target of byFile.get(file) ?? []) {
      if (target.endsWith('.js')) pending.push(target.replace(/\.js$/, '.ts'));
    }
  }
  return seen;
}

/** The imports by which `entry` reaches Nest, the database or the apps: each first step over the line. */
function offlineViolations(entry: string, edges: readonly ImportEdge[]): string[] {
  const reached = reachableFrom(entry, edges);
  const forbidden = (path: string): boolean =>
    VERIFIER_FORBIDDEN_PACKAGES.some((pattern) => pattern.test(path)) ||
    VERIFIER_FORBIDDEN_FOLDERS.some((folder) => path.startsWith(folder));
  return edges
    .filter(({ from, to }) => reached.has(from) && !forbidden(from) && forbidden(to))
    .map(({ from, to }) => `${entry} reaches ${to} through ${from}`);
}

describe('import rule checker (on fabricated graphs)', () => {
  const rules = parseImportRules(
    [
      '| lib | purpose | may import |',
      '| --- | --- | --- |',
      '| `libs/domain` | pure | none |',
      '| `libs/audit` | chain | domain, webauthn |',
      '| `libs/webauthn` | ceremonies | domain |',
    ].join('\n'),
  );

  it('reads the table, "none" as no imports', () => {
    expect(rules).toEqual(
      new Map([
        ['domain', new Set()],
        ['audit', new Set(['domain', 'webauthn'])],
        ['webauthn', new Set(['domain'])],
      ]),
    );
  });

  it('refuses a table that names a lib without a row, or has no table', () => {
    expect(() =>
      parseImportRules('| lib | purpose | may import |\n| - | - | - |\n| `libs/audit` | chain | keys |'),
    ).toThrow('libs/audit may import "keys", which has no row');
    expect(() => parseImportRules('# no table here')).toThrow('no "| lib | purpose | may import |" table');
  });

  it('passes allowed imports, packages, imports within a lib, and apps importing libs', () => {
    const edges: ImportEdge[] = [
      { from: 'libs/audit/verify.ts', to: 'libs/webauthn/step-up-binding.js' },
      { from: 'libs/audit/verify.ts', to: 'libs/audit/chain.js' },
      { from: 'libs/audit/verify.ts', to: 'node:crypto' },
      { from: 'libs/audit/verify.spec.ts', to: 'test/support/audit-chain.js' },
      { from: 'apps/cli/main.ts', to: 'libs/audit/verify.js' },
    ];
    expect(importViolations(edges, rules)).toEqual([]);
    expect(importCycles(edges)).toEqual([]);
  });

  it('flags a lib importing one its row does not list, an unlisted lib, and apps', () => {
    expect(
      importViolations(
        [
          { from: 'libs/webauthn/step-up-binding.ts', to: 'libs/audit/chain.js' },
          { from: 'libs/keys/signing-key-store.ts', to: 'libs/audit/audit-log.js' },
          { from: 'libs/audit/export.ts', to: 'apps/broker/main.js' },
          { from: 'apps/worker/main.ts', to: 'apps/broker/bootstrap.js' },
          { from: 'libs/audit/export.ts', to: 'test/support/stack.js' },
        ],
        rules,
      ),
    ).toEqual([
      'libs/webauthn/step-up-binding.ts imports libs/audit/chain.js: libs/webauthn may not import libs/audit',
      'libs/keys/signing-key-store.ts imports libs/audit/audit-log.js: libs/keys has no row in the lib table',
      'libs/audit/export.ts imports apps/broker/main.js: libs never import apps',
      'apps/worker/main.ts imports apps/broker/bootstrap.js: an app imports libs, never another app',
      'libs/audit/export.ts imports test/support/stack.js: only *.spec.ts files may import test/',
    ]);
  });

  it('finds every cycle between libs, however long, and names the imports that close it', () => {
    const edges: ImportEdge[] = [
      { from: 'libs/audit/verify.ts', to: 'libs/webauthn/step-up-binding.js' },
      { from: 'libs/webauthn/step-up-binding.ts', to: 'libs/audit/chain.js' },
      { from: 'libs/keys/store.ts', to: 'libs/connectors/jwt.js' },
      { from: 'libs/connectors/jwt.ts', to: 'libs/elevation/registry.js' },
      { from: 'libs/elevation/registry.ts', to: 'libs/keys/store.js' },
      { from: 'libs/domain/errors.ts', to: 'libs/domain/policy.js' },
    ];
    expect(importCycles(edges)).toEqual([
      'import cycle between libs/audit, libs/webauthn (libs/audit/verify.ts → libs/webauthn/step-up-binding.js; ' +
        'libs/webauthn/step-up-binding.ts → libs/audit/chain.js)',
      'import cycle between libs/connectors, libs/elevation, libs/keys (libs/connectors/jwt.ts → ' +
        'libs/elevation/registry.js; libs/elevation/registry.ts → libs/keys/store.js; libs/keys/store.ts → ' +
        'libs/connectors/jwt.js)',
    ]);
  });

  it('follows the offline verifier through every file it reaches to an import of Nest or the database', () => {
    const edges: ImportEdge[] = [
      { from: 'libs/audit/verify.ts', to: 'libs/audit/csv.js' },
      { from: 'libs/audit/csv.ts', to: 'libs/webauthn/step-up-binding.js' },
      { from: 'libs/webauthn/step-up-binding.ts', to: 'libs/db/index.js' },
      { from: 'libs/db/index.ts', to: 'typeorm' },
      { from: 'libs/audit/csv.ts', to: '@nestjs/common' },
      { from: 'libs/audit/export.ts', to: 'typeorm' },
    ];
    expect(offlineViolations('libs/audit/verify.ts', edges)).toEqual([
      'libs/audit/verify.ts reaches libs/db/index.js through libs/webauthn/step-up-binding.ts',
      'libs/audit/verify.ts reaches @nestjs/common through libs/audit/csv.ts',
    ]);
  });
});

describe('import rules of this repository (docs/architecture.md §1)', () => {
  const rules = parseImportRules(readFileSync(join(ROOT, ARCHITECTURE), 'utf8'));
  const files = [...sourceFiles('libs'), ...sourceFiles('apps')];
  const edges = files.flatMap(importsOf);

  it('has a row for every lib folder and none for a folder that does not exist', () => {
    const folders = readdirSync(join(ROOT, 'libs'), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
    expect([...rules.keys()].sort()).toEqual(folders.sort());
  });

  it('allows no cycle in the table itself', () => {
    expect(libCycles(rules)).toEqual([]);
  });

  it('reads imports from every file (the checker is not looking at nothing)', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(edges).toContainEqual({ from: 'libs/audit/verify.ts', to: 'libs/webauthn/step-up-binding.js' });
  });

  it('finds no lib importing one it may not, no lib importing an app, no app importing another', () => {
    expect(importViolations(edges, rules)).toEqual([]);
  });

  it('finds no import cycle between libs', () => {
    expect(importCycles(edges)).toEqual([]);
  });

  it('keeps the offline verifier free of Nest, the database and the apps', () => {
    expect(reachableFrom(OFFLINE_VERIFIER, edges).size).toBeGreaterThan(5);
    expect(offlineViolations(OFFLINE_VERIFIER, edges)).toEqual([]);
  });
});
