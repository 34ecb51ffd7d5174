// The offline verifier of audit exports and request bundles (DESIGN §9). It runs anywhere Node runs, with the
// file and the broker's audit JWKS: it imports nothing from apps/, the database or Nest. This file reads the
// formats and checks the manifest signature; event-checker.ts checks the events, canonical-form.ts the text.
import { createReadStream } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import type { JsonWebKey } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import { REQUEST_SUBJECT_FIELDS, subjectDigest } from '../webauthn/step-up-binding.js';
import { verifyBundleTransparency } from './bundle-transparency.js';
import { holdsDuplicateKey, readCanonicalJson } from './canonical-form.js';
import { CsvReader } from './csv.js';
import { ExportChecker, failure, isRecord, type VerifyCounts, type VerifyFailure } from './event-checker.js';
import { JSON_EXPORT_MANIFEST, JSON_EXPORT_START } from './export-layout.js';
import { parseManifest } from './manifest-read.js';
import {
  canonicalDigest,
  CSV_MANIFEST_MARKER,
  EXPORT_COLUMNS,
  manifestSignatureHolds,
  type ExportedEvent,
  type ExportFormat,
  type ExportManifest,
} from './manifest.js';

export type { VerifyCounts, VerifyFailure } from './event-checker.js';

export interface VerifyOptions {
  /** The broker's published audit keys (GET /.well-known/audit-jwks.json), matched by kid. */
  jwks?: readonly JsonWebKey[];
  /**
   * Without jwks, accept a manifest that verifies only with the key it embeds. Anyone who rewrote the file
   * can embed their own key, so without this (or jwks) such a file is not a success (VerifyUnpinned).
   */
  trustEmbeddedKey?: boolean;
  /**
   * Worker threads for the assertion signatures (default: one per core, at most 4; 0 checks them on this
   * thread). The answer, and the first failure named, do not depend on it.
   */
  threads?: number;
  /** Assertions per batch sent to a thread (default 256); threads start only once a batch is full. */
  threadBatch?: number;
}

/** Everything held. */
export interface VerifySuccess {
  ok: true;
  format: ExportFormat | 'bundle';
  counts: VerifyCounts;
  manifest: ExportManifest;
  /** False when the signature was checked only against the key embedded in the manifest (trustEmbeddedKey). */
  keyPinned: boolean;
  /** A bundle's events proven in a signed checkpoint of the Merkle tree of that size (issue 22). */
  transparency?: { checkpointSize: number; events: number };
}

/**
 * The file is consistent and its manifest verifies with the key it embeds, but no key was pinned: a forger
 * who edited events, rebuilt the chain and re-signed with their own key gets exactly this. Not a success.
 */
export interface VerifyUnpinned {
  ok: false;
  unpinned: true;
  seq: null;
  reason: string;
  format: ExportFormat | 'bundle';
  counts: VerifyCounts;
  manifest: ExportManifest;
}

export type VerifyResult = VerifySuccess | VerifyUnpinned | VerifyFailure;

/** Bytes read from the end of a file to find the manifest line before streaming the rest. */
const TAIL_BYTES = 1 << 20;
const HEAD_BYTES = 1 << 16;
const DEFAULT_THREAD_BATCH = 256;
const MAX_THREADS = 4;
const JSON_LAYOUT = `not laid out as the broker writes a JSON export: ${JSON_EXPORT_START} on line 1, one event per line, then ${JSON_EXPORT_MANIFEST}{…}}`;

/** Verifies an export held in memory: NDJSON, CSV or JSON, or a request bundle, detected from the text. */
export async function verifyExport(
  input: string | readonly string[],
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const text = stripBom(typeof input === 'string' ? input : input.join('\n'));
  const format = detectFormat(text, lastLineOf(text));
  if (format === 'csv') {
    const reader = new CsvReader();
    let records: string[][];
    try {
      records = [...reader.push(text), ...reader.end()];
    } catch (error) {
      return failure(null, `not valid CSV: ${(error as Error).message}`);
    }
    return verifyCsvRecords(records.at(-1) ?? [], records, options);
  }
  // CRLF ends a line like LF, as readline reads a file; a lone CR leaves a line that is not canonical.
  if (format === 'ndjson') return verifyNdjsonLines(lastLineOf(text), text.split(/\r?\n/), options);
  if (format === 'json') {
    if (text.startsWith(JSON_EXPORT_START)) return verifyJsonExport(text, options);
    const parsed = parseJson(text);
    if (parsed === undefined) return failure(null, 'the file is not JSON, NDJSON or CSV');
    return isRecord(parsed) && parsed.type === 'bundle'
      ? verifyBundle(text, options)
      : failure(null, JSON_LAYOUT);
  }
  return failure(null, 'not an audit export: expected NDJSON, CSV (header "seq,…") or JSON');
}

/**
 * Verifies an export file. NDJSON and CSV are streamed (the manifest is read from the end first), so memory
 * stays flat for any size; JSON exports and bundles are read whole.
 */
export async function verifyExportFile(path: string, options: VerifyOptions = {}): Promise<VerifyResult> {
  const handle = await open(path, 'r');
  let head: string;
  let tail: string;
  try {
    const { size } = await handle.stat();
    head = stripBom(await readSlice(handle, 0, Math.min(size, HEAD_BYTES)));
    const tailStart = Math.max(0, size - TAIL_BYTES);
    tail = await readSlice(handle, tailStart, size - tailStart);
    // A slice that starts mid-file starts mid-line: drop that partial line.
    if (tailStart > 0) tail = tail.slice(tail.indexOf('\n') + 1);
  } finally {
    await handle.close();
  }
  const lastLine = lastLineOf(tail);
  const format = detectFormat(head, lastLine);
  if (format === 'json' || format === null) return verifyExport(await readFile(path, 'utf8'), options);
  if (format === 'ndjson') {
    const stream = createReadStream(path, { encoding: 'utf8' });
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    try {
      return await verifyNdjsonLines(lastLine, lines, options);
    } finally {
      lines.close();
      stream.destroy();
    }
  }
  let manifestRecord: string[];
  try {
    const reader = new CsvReader();
    manifestRecord = [...reader.push(lastLine), ...reader.end()].at(-1) ?? [];
  } catch {
    manifestRecord = [];
  }
  const stream = createReadStream(path, { encoding: 'utf8' });
  try {
    return await verifyCsvRecords(manifestRecord, csvRecords(stream), options);
  } finally {
    stream.destroy();
  }
}

/**
 * Verifies a request bundle (see libs/audit/bundle.ts): its events like an export's, that each belongs to the
 * request, that `request` carries the immutable fields its request.created event committed to, that
 * `policyVersion` is the version the request was filed under, and the signed attachmentsDigest.
 */
export async function verifyBundle(input: unknown, options: VerifyOptions = {}): Promise<VerifyResult> {
  // An object is read back through JSON too: what is verified is exactly what a bundle file would hold.
  const text = typeof input === 'string' ? stripBom(input) : JSON.stringify(input);
  const bundle = parseJson(text);
  if (bundle === undefined) return failure(null, 'the bundle is not JSON');
  // A bundle is laid out as the broker's JSON serialiser writes it, so the rule is no key twice, at any depth.
  if (holdsDuplicateKey(text, bundle)) return failure(null, 'the bundle holds a duplicate key');
  if (!isRecord(bundle) || bundle.type !== 'bundle' || bundle.version !== 1) {
    return failure(null, 'not a request bundle (type "bundle", version 1)');
  }
  const { requestId, request, policyVersion, grants, events } = bundle;
  if (
    typeof requestId !== 'string' ||
    !isRecord(request) ||
    !Array.isArray(grants) ||
    !Array.isArray(events)
  ) {
    return failure(null, 'the bundle lacks requestId, request, grants or events');
  }
  if (policyVersion !== null && !isRecord(policyVersion))
    return failure(null, 'bundle.policyVersion is not an object');
  const manifest = parseManifest(bundle.manifest, 'bundle');
  if (typeof manifest === 'string') return failure(null, manifest);
  if (Object.keys(manifest.filters).length !== 1 || manifest.filters.requestId !== requestId) {
    return failure(null, 'the manifest does not cover exactly this request');
  }
  const result = await withChecker(manifest, options, (checker) =>
    checkBundle(checker, { requestId, request, policyVersion, grants, events }, manifest, options),
  );
  if (!result.ok || bundle.transparency === undefined) return result;
  // The events' inclusion in a signed checkpoint of the Merkle tree, by the pinned keys (else the manifest's).
  const keys = options.jwks ?? (manifest.publicJwk ? [manifest.publicJwk as JsonWebKey] : []);
  const included = verifyBundleTransparency(bundle.transparency, events as ExportedEvent[], keys);
  if (!included.ok) return failure(included.seq, `transparency: ${included.reason}`);
  return { ...result, transparency: { checkpointSize: included.size, events: included.events } };
}

async function checkBundle(
  checker: ExportChecker,
  bundle: {
    requestId: string;
    request: Record<string, unknown>;
    policyVersion: Record<string, unknown> | null;
    grants: unknown[];
    events: unknown[];
  },
  manifest: ExportManifest,
  options: VerifyOptions,
): Promise<VerifyResult> {
  const { requestId, request, policyVersion, grants, events } = bundle;
  for (const [index, event] of events.entries()) {
    const broken = checker.event(event, `events[${index}]`) ?? (await relieved(checker));
    if (broken) return checker.firstFailure(broken);
  }
  const totals = await checker.finish();
  if (totals) return totals;
  if (manifest.attachmentsDigest !== canonicalDigest({ request, policyVersion, grants })) {
    return failure(
      null,
      'request, policyVersion or grants differ from what the manifest signed (attachmentsDigest)',
    );
  }
  if (request.id !== requestId) return failure(null, 'bundle.request.id is not the bundle requestId');
  const created = checker.subjectOf(requestId);
  if (created === undefined)
    return failure(null, 'the bundle holds no request.created event with the request subject');
  let requestDigest: string;
  try {
    requestDigest = subjectDigest(pickSubject(request));
  } catch (error) {
    return failure(null, `bundle.request lacks an immutable field: ${(error as Error).message}`);
  }
  if (requestDigest !== created.digest) {
    return failure(
      created.seq,
      'bundle.request differs from the subject its request.created event committed to',
    );
  }
  if (policyVersion !== null) {
    if (policyVersion.hash !== request.policyHash) {
      return failure(null, 'bundle.policyVersion is not the version the request was filed under');
    }
    if (canonicalDigest(policyVersion.content) !== policyVersion.hash) {
      return failure(null, 'bundle.policyVersion.content does not hash to its hash');
    }
  }
  return signed(checker, manifest, 'bundle', options);
}

async function verifyNdjsonLines(
  manifestLine: string,
  lines: Iterable<string> | AsyncIterable<string>,
  options: VerifyOptions,
): Promise<VerifyResult> {
  const read = readCanonicalJson(manifestLine);
  if (read.problem !== null && read.value !== undefined)
    return failure(null, `the manifest line ${read.problem}`);
  const manifest = parseManifest(read.value, 'ndjson');
  if (typeof manifest === 'string') return failure(null, manifest);
  return withChecker(manifest, options, (checker) =>
    checkNdjsonLines(checker, manifest, manifestLine, lines, options),
  );
}

async function checkNdjsonLines(
  checker: ExportChecker,
  manifest: ExportManifest,
  manifestLine: string,
  lines: Iterable<string> | AsyncIterable<string>,
  options: VerifyOptions,
): Promise<VerifyResult> {
  let pending: { text: string; line: number } | null = null;
  let lineNumber = 0;
  for await (const raw of lines) {
    lineNumber++;
    const text = lineNumber === 1 ? stripBom(raw) : raw;
    if (text.trim() === '') continue;
    if (pending !== null) {
      const broken = ndjsonEvent(checker, pending.text, pending.line) ?? (await relieved(checker));
      if (broken) return checker.firstFailure(broken);
    }
    pending = { text, line: lineNumber };
  }
  if (pending === null || pending.text !== manifestLine) {
    return checker.firstFailure(failure(null, 'the last line is not the manifest: the export is truncated'));
  }
  return (await checker.finish()) ?? signed(checker, manifest, 'ndjson', options);
}

function ndjsonEvent(checker: ExportChecker, text: string, line: number): VerifyFailure | null {
  const { value, problem } = readCanonicalJson(text);
  if (problem !== null) return failure(seqOf(value), `line ${line} ${problem}`);
  if (isRecord(value) && value.type === 'manifest')
    return failure(null, `line ${line}: a manifest before the end of the file`);
  return checker.event(value, `line ${line}`, text);
}

async function verifyCsvRecords(
  manifestRecord: string[],
  records: Iterable<string[]> | AsyncIterable<string[]>,
  options: VerifyOptions,
): Promise<VerifyResult> {
  const isManifest =
    manifestRecord[0] === CSV_MANIFEST_MARKER && manifestRecord.length === EXPORT_COLUMNS.length;
  const read = isManifest ? readCanonicalJson(manifestRecord[EXPORT_COLUMNS.indexOf('data')]) : null;
  if (read !== null && read.problem !== null && read.value !== undefined)
    return failure(null, `the manifest record's data ${read.problem}`);
  const manifest = parseManifest(read?.value, 'csv');
  if (typeof manifest === 'string') return failure(null, manifest);
  return withChecker(manifest, options, (checker) =>
    checkCsvRecords(checker, manifest, manifestRecord, records, options),
  );
}

async function checkCsvRecords(
  checker: ExportChecker,
  manifest: ExportManifest,
  manifestRecord: string[],
  records: Iterable<string[]> | AsyncIterable<string[]>,
  options: VerifyOptions,
): Promise<VerifyResult> {
  let pending: { record: string[]; number: number } | null = null;
  let number = 0;
  try {
    for await (const record of records) {
      number++;
      if (number === 1) {
        if (
          record.length !== EXPORT_COLUMNS.length ||
          record.some((field, index) => field !== EXPORT_COLUMNS[index])
        ) {
          return checker.firstFailure(
            failure(null, `the first record is not the header ${EXPORT_COLUMNS.join(',')}`),
          );
        }
        continue;
      }
      if (pending !== null) {
        const broken = csvEvent(checker, pending.record, pending.number) ?? (await relieved(checker));
        if (broken) return checker.firstFailure(broken);
      }
      pending = { record, number };
    }
  } catch (error) {
    return checker.firstFailure(failure(null, `not valid CSV: ${(error as Error).message}`));
  }
  if (
    pending === null ||
    pending.record[0] !== CSV_MANIFEST_MARKER ||
    pending.record.join(',') !== manifestRecord.join(',')
  ) {
    return checker.firstFailure(
      failure(null, 'the last record is not the manifest: the export is truncated'),
    );
  }
  return (await checker.finish()) ?? signed(checker, manifest, 'csv', options);
}

function csvEvent(checker: ExportChecker, record: string[], number: number): VerifyFailure | null {
  const where = `record ${number}`;
  if (record[0] === CSV_MANIFEST_MARKER)
    return failure(null, `${where}: a manifest before the end of the file`);
  const seq = /^[1-9][0-9]{0,15}$/.test(record[0]) ? Number(record[0]) : null;
  if (record.length !== EXPORT_COLUMNS.length) {
    return failure(seq, `${where} has ${record.length} fields, not ${EXPORT_COLUMNS.length}`);
  }
  if (seq === null)
    return failure(null, `${where}: seq ${JSON.stringify(record[0])} is not a positive integer`);
  const [, at, actorId, action, subjectType, subjectId, requestId, dataText, prevHash, hash] = record;
  const { value: data, problem } = readCanonicalJson(dataText);
  if (problem !== null) return failure(seq, `${where}: data ${problem}`);
  const event = {
    seq,
    at,
    actorId,
    action,
    subjectType,
    subjectId,
    requestId: requestId === '' ? null : requestId,
  };
  return checker.event({ ...event, data, prevHash, hash }, where);
}

/**
 * A JSON export is read line by line, the way the broker writes it (EXPORT_LAYOUTS.json): the first line, one
 * canonical event per line, then the manifest line. Any other layout of the same JSON is refused, so each
 * event is checked as the exact text a reader sees, like an NDJSON line.
 */
async function verifyJsonExport(text: string, options: VerifyOptions): Promise<VerifyResult> {
  const lines = text.split(/\r?\n/);
  while (lines.at(-1) === '') lines.pop();
  const last = lines.at(-1) ?? '';
  if (lines.length < 2 || lines[0] !== JSON_EXPORT_START || !last.startsWith(JSON_EXPORT_MANIFEST)) {
    return failure(null, JSON_LAYOUT);
  }
  const read = readCanonicalJson(
    last.slice(JSON_EXPORT_MANIFEST.length, last.endsWith('}') ? -1 : undefined),
  );
  if (!last.endsWith('}') || read.value === undefined) return failure(null, JSON_LAYOUT);
  if (read.problem !== null) return failure(null, `the manifest (line ${lines.length}) ${read.problem}`);
  const manifest = parseManifest(read.value, 'json');
  if (typeof manifest === 'string') return failure(null, manifest);
  return withChecker(manifest, options, (checker) =>
    checkJsonEvents(checker, manifest, lines.slice(1, -1), options),
  );
}

async function checkJsonEvents(
  checker: ExportChecker,
  manifest: ExportManifest,
  events: string[],
  options: VerifyOptions,
): Promise<VerifyResult> {
  for (const [index, line] of events.entries()) {
    const where = `events[${index}] (line ${index + 2})`;
    // Every event line but the last ends with the comma that separates it from the next.
    const separated = index < events.length - 1;
    if (separated && !line.endsWith(','))
      return checker.firstFailure(failure(null, `${where}: ${JSON_LAYOUT}`));
    const text = separated ? line.slice(0, -1) : line;
    const { value, problem } = readCanonicalJson(text);
    if (problem !== null) return checker.firstFailure(failure(seqOf(value), `${where} ${problem}`));
    const broken = checker.event(value, where, text) ?? (await relieved(checker));
    if (broken) return checker.firstFailure(broken);
  }
  return (await checker.finish()) ?? signed(checker, manifest, 'json', options);
}

/**
 * Last check: the manifest signature, against a pinned key when jwks are given, else the embedded one. An
 * embedded key proves nothing about who signed, so it succeeds only when the caller says to trust it.
 */
async function signed(
  checker: ExportChecker,
  manifest: ExportManifest,
  format: ExportFormat | 'bundle',
  options: VerifyOptions,
): Promise<VerifyResult> {
  const pinned = options.jwks !== undefined;
  const jwk = pinned ? options.jwks?.find((key) => key.kid === manifest.kid) : manifest.publicJwk;
  if (jwk === undefined) {
    return failure(
      null,
      pinned
        ? `the manifest is signed by key ${JSON.stringify(manifest.kid)}, which is not among the pinned keys`
        : 'the manifest embeds no public key: verify with the broker audit JWKS (--jwks)',
    );
  }
  if (!pinned && jwk.kid !== manifest.kid)
    return failure(null, 'the embedded public key is not the signing kid');
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') {
    return failure(null, `key ${JSON.stringify(manifest.kid)} is not an Ed25519 key`);
  }
  if (!(await manifestSignatureHolds(manifest, jwk.x))) {
    return failure(
      null,
      `the manifest signature does not verify with ${pinned ? 'pinned' : 'embedded'} key ${JSON.stringify(manifest.kid)}`,
    );
  }
  const { counts } = checker;
  if (pinned || options.trustEmbeddedKey === true) {
    return { ok: true, format, counts, manifest, keyPinned: pinned };
  }
  const reason =
    `the manifest is signed by the key it embeds (kid ${JSON.stringify(manifest.kid)}), which was not pinned: ` +
    "anyone who rewrote the file could have embedded their own; pin the broker's audit keys (jwks)";
  return { ok: false, unpinned: true, seq: null, reason, format, counts, manifest };
}

/** Runs `check` with an ExportChecker for `manifest`, and stops its threads however it ends. */
async function withChecker(
  manifest: ExportManifest,
  options: VerifyOptions,
  check: (checker: ExportChecker) => Promise<VerifyResult>,
): Promise<VerifyResult> {
  const checker = new ExportChecker(manifest, options.jwks, {
    threads: options.threads ?? Math.min(availableParallelism(), MAX_THREADS),
    batch: options.threadBatch ?? DEFAULT_THREAD_BATCH,
  });
  try {
    return await check(checker);
  } finally {
    await checker.close();
  }
}

/** When signature checks run behind, waits for the oldest; a failure among them, or null. */
async function relieved(checker: ExportChecker): Promise<VerifyFailure | null> {
  return checker.backlogged ? checker.relieve() : null;
}

/** The step-up subject of a request (DESIGN §4's immutable fields), picked by name from the bundle's request. */
function pickSubject(request: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(REQUEST_SUBJECT_FIELDS.map((field) => [field, request[field]]));
}

/**
 * ndjson, csv or json (a JSON export or a bundle), or null when it is none of them. NDJSON is recognised by its
 * last line, the manifest, which parses alone (the first line may be longer than the head that was read), or
 * by a first line that is an event (a truncated NDJSON export, reported as such).
 */
function detectFormat(head: string, lastLine: string): ExportFormat | null {
  const start = head.trimStart();
  if (start.startsWith(`${EXPORT_COLUMNS[0]},`)) return 'csv';
  if (!start.startsWith('{')) return null;
  const last = parseJson(lastLine);
  if (isRecord(last) && last.type === 'manifest') return 'ndjson';
  const newline = start.indexOf('\n');
  const first = newline === -1 ? undefined : parseJson(start.slice(0, newline));
  return isRecord(first) && typeof first.seq === 'number' ? 'ndjson' : 'json';
}

async function* csvRecords(chunks: AsyncIterable<string | Buffer>): AsyncGenerator<string[]> {
  const reader = new CsvReader();
  let first = true;
  for await (const chunk of chunks) {
    yield* reader.push(first ? stripBom(String(chunk)) : String(chunk));
    first = false;
  }
  yield* reader.end();
}

/** The last line that is not blank, without a CR that ended it, or ''. */
function lastLineOf(text: string): string {
  let end = text.length;
  while (end > 0) {
    const start = text.lastIndexOf('\n', end - 1) + 1;
    const line = text.slice(start, end);
    if (line.trim() !== '') return line.endsWith('\r') ? line.slice(0, -1) : line;
    end = start - 1;
  }
  return '';
}

async function readSlice(handle: FileHandle, position: number, length: number): Promise<string> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The seq a refused event claims, to name it, or null. */
function seqOf(value: unknown): number | null {
  return isRecord(value) && Number.isSafeInteger(value.seq) ? (value.seq as number) : null;
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
