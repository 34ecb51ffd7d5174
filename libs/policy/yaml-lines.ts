import { isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { PolicyProblem } from './policy-error.js';

// A policy problem names the file and line of the YAML node it is about, even when it is found after the
// files were merged: every value keeps its Origin (the parsed document and its path in it).

/** One policy source; `name` is what problems show (e.g. `policies/example.yaml`). */
export interface PolicyFile {
  name: string;
  text: string;
}

export type YamlPath = (string | number)[];

/** A parsed policy file, kept to map a path back to a line. */
export interface SourceFile {
  name: string;
  doc: Document;
  lineCounter: LineCounter;
}

/** Where a value came from, so a problem found after merging still names its file and line. */
export interface Origin {
  source: SourceFile;
  path: YamlPath;
}

/** Parses one file's YAML into plain values; problems for syntax errors, bad aliases or an empty file. */
export function readYaml(
  file: PolicyFile,
): { source: SourceFile; value: unknown } | { problems: PolicyProblem[] } {
  const lineCounter = new LineCounter();
  // The YAML 1.2 core schema even under a `%YAML 1.1` directive, where `yes` is true and `e1` a number.
  const doc = parseDocument(file.text, { lineCounter, prettyErrors: false, schema: 'core' });
  const source: SourceFile = { name: file.name, doc, lineCounter };
  if (doc.errors.length > 0) {
    return {
      problems: doc.errors.map((error) => ({
        file: file.name,
        line: lineCounter.linePos(error.pos[0]).line,
        path: '',
        reason: `YAML syntax error: ${error.message}`,
      })),
    };
  }

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // Unresolved or excessive aliases surface only when the document is turned into values.
    const message = error instanceof Error ? error.message : String(error);
    return { problems: [{ file: file.name, line: null, path: '', reason: `YAML error: ${message}` }] };
  }
  if (value === null || value === undefined) {
    const reason = 'the file is empty; expected a mapping with groups, connectors and/or entitlements';
    return { problems: [{ file: file.name, line: null, path: '', reason }] };
  }
  return { source, value };
}

/** A problem at `origin`, on the line of its node (or of its key when `atKey`). */
export function problemAt(origin: Origin, reason: string, options: { atKey?: boolean } = {}): PolicyProblem {
  return {
    file: origin.source.name,
    line: lineOf(origin, options.atKey ?? false),
    path: pathText(origin.path),
    reason,
  };
}

/** The line of the node at `path`, or of its nearest existing parent; of the key instead when `atKey`. */
function lineOf({ source, path }: Origin, atKey: boolean): number | null {
  if (atKey && path.length > 0) {
    const parent = source.doc.getIn(path.slice(0, -1), true);
    if (isMap(parent)) {
      const pair = parent.items.find(
        (item) => isScalar(item.key) && String(item.key.value) === String(path.at(-1)),
      );
      if (pair && isNode(pair.key) && pair.key.range)
        return source.lineCounter.linePos(pair.key.range[0]).line;
    }
  }
  for (let depth = path.length; depth >= 0; depth--) {
    const node = source.doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) return source.lineCounter.linePos(node.range[0]).line;
  }
  return null;
}

/** `entitlements[2].approval`; `the document` for the empty path. */
export function pathText(path: YamlPath): string {
  if (path.length === 0) return 'the document';
  return path.reduce<string>(
    (text, key) => (typeof key === 'number' ? `${text}[${key}]` : text ? `${text}.${key}` : key),
    '',
  );
}

/** The problem for a name defined twice, at the second place, naming both files and lines. */
export function definedTwice(what: string, first: Origin, second: Origin): PolicyProblem {
  const firstAt = `${first.source.name}:${lineOf(first, true) ?? '?'}`;
  const secondAt = `${second.source.name}:${lineOf(second, true) ?? '?'}`;
  return problemAt(second, `${what} is defined twice: ${firstAt} and ${secondAt}`, { atKey: true });
}

/** Entitlement lists are sorted and deduplicated; the YAML ones are not, so an item is found by value. */
export function indexIn({ source, path }: Origin, listPath: YamlPath, value: string): number {
  const list = source.doc.getIn([...path, ...listPath], true);
  return isSeq(list) ? list.items.findIndex((item) => isScalar(item) && item.value === value) : 0;
}
