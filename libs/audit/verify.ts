// The offline verifier of audit exports and request bundles (DESIGN §9). It runs anywhere Node runs, with the
// file and optionally the broker's audit JWKS: it imports nothing from apps/ and nothing Nest.
import { createReadStream } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { createPublicKey, verify, type JsonWebKey } from 'node:crypto';
import { createInterface } from 'node:readline';
import { REQUEST_SUBJECT_FIELDS, subjectDigest } from '../webauthn/step-up-binding.js';
import { chainHash, GENESIS_HASH, type ChainedEvent } from './chain.js';
import { CHECKPOINT_ACTION, checkpointSignatureValid, parseCheckpointData } from './checkpoint.js';
import { CsvReader } from './csv.js';
import { checkStepUpAssertion, decodeBase64Url, parseStepUpEvidence } from './evidence-check.js';
import {
  canonicalDigest,
  CSV_MANIFEST_MARKER,
  EXPORT_COLUMNS,
  EXPORT_FORMATS,
  EventsDigest,
  manifestSigningInput,
  type ExportedEvent,
  type ExportFormat,
  type ExportManifest,
} from './manifest.js';

/** Keys to check manifest signatures against (the broker's published audit JWKS); matched by kid. */
export interface VerifyOptions {
  jwks?: readonly JsonWebKey[];
}

/** What a successful verification covered. */
export interface VerifyCounts {
  events: number;
  /** approval.recorded events (each with a verified assertion). */
  approvals: number;
  /** Step-up assertions verified (approvals, activations, any other event carrying evidence). */
  assertions: number;
  /** request.created events whose subject the later decisions' digests were checked against. */
  requests: number;
  /** audit.checkpoint events whose signed chain head was checked. */
  checkpoints: number;
}

export type VerifyResult =
  | {
      ok: true;
      format: ExportFormat | 'bundle';
      counts: VerifyCounts;
      manifest: ExportManifest;
      /** False when the signature was checked only against the key embedded in the manifest (no jwks given). */
      keyPinned: boolean;
    }
  | VerifyFailure;

/** The first thing that does not hold: the seq of the event where it broke, or null for the file or manifest. */
export interface VerifyFailure {
  ok: false;
  seq: number | null;
  reason: string;
}

const FILTER_KEYS = new Set(['from', 'to', 'actorId', 'entitlementId', 'requestId', 'action']);
const HEX_32 = /^[0-9a-f]{64}$/;
/** Step-up actions on a stored request: their subjectId is the request id, their digest covers its subject. */
const REQUEST_ACTIONS = new Set(['approve', 'deny', 'activate', 'revoke']);
/** The step-up actions a decision event may carry; other events carrying evidence are checked, not matched. */
const EVIDENCE_ACTIONS: Record<string, readonly string[]> = {
  'approval.recorded': ['approve', 'deny'],
  'request.activated': ['activate', 'break-glass'],
};
/** Bytes read from the end of a file to find the manifest line before streaming the rest. */
const TAIL_BYTES = 1 << 20;
const HEAD_BYTES = 1 << 16;

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
  if (format === 'ndjson') return verifyNdjsonLines(lastLineOf(text), text.split('\n'), options);
  if (format === 'json') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return failure(null, 'the file is not JSON, NDJSON or CSV');
    }
    return isRecord(parsed) && parsed.type === 'bundle'
      ? verifyBundle(parsed, options)
      : verifyJsonExport(parsed, options);
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
  let bundle: unknown;
  try {
    // An object is read back through JSON too: what is verified is exactly what a bundle file would hold.
    bundle = JSON.parse(typeof input === 'string' ? stripBom(input) : JSON.stringify(input));
  } catch {
    return failure(null, 'the bundle is not JSON');
  }
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
  const checker = new ExportChecker(manifest, options.jwks);
  for (const [index, event] of events.entries()) {
    const broken = checker.event(event, `events[${index}]`);
    if (broken) return broken;
  }
  const totals = checker.finish();
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
  const manifest = parseManifest(parseJson(manifestLine), 'ndjson');
  if (typeof manifest === 'string') return failure(null, manifest);
  const checker = new ExportChecker(manifest, options.jwks);
  let pending: { text: string; line: number } | null = null;
  let lineNumber = 0;
  for await (const raw of lines) {
    lineNumber++;
    const text = lineNumber === 1 ? stripBom(raw) : raw;
    if (text.trim() === '') continue;
    if (pending !== null) {
      const broken = ndjsonEvent(checker, pending.text, pending.line);
      if (broken) return broken;
    }
    pending = { text, line: lineNumber };
  }
  if (pending === null || pending.text.trim() !== manifestLine.trim()) {
    return failure(null, 'the last line is not the manifest: the export is truncated');
  }
  return checker.finish() ?? signed(checker, manifest, 'ndjson', options);
}

function ndjsonEvent(checker: ExportChecker, text: string, line: number): VerifyFailure | null {
  const value = parseJson(text);
  if (value === undefined) return failure(null, `line ${line} is not JSON`);
  if (isRecord(value) && value.type === 'manifest')
    return failure(null, `line ${line}: a manifest before the end of the file`);
  return checker.event(value, `line ${line}`);
}

async function verifyCsvRecords(
  manifestRecord: string[],
  records: Iterable<string[]> | AsyncIterable<string[]>,
  options: VerifyOptions,
): Promise<VerifyResult> {
  const manifest = parseManifest(
    manifestRecord[0] === CSV_MANIFEST_MARKER && manifestRecord.length === EXPORT_COLUMNS.length
      ? parseJson(manifestRecord[EXPORT_COLUMNS.indexOf('data')])
      : undefined,
    'csv',
  );
  if (typeof manifest === 'string') return failure(null, manifest);
  const checker = new ExportChecker(manifest, options.jwks);
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
          return failure(null, `the first record is not the header ${EXPORT_COLUMNS.join(',')}`);
        }
        continue;
      }
      if (pending !== null) {
        const broken = csvEvent(checker, pending.record, pending.number);
        if (broken) return broken;
      }
      pending = { record, number };
    }
  } catch (error) {
    return failure(null, `not valid CSV: ${(error as Error).message}`);
  }
  if (
    pending === null ||
    pending.record[0] !== CSV_MANIFEST_MARKER ||
    pending.record.join(',') !== manifestRecord.join(',')
  ) {
    return failure(null, 'the last record is not the manifest: the export is truncated');
  }
  return checker.finish() ?? signed(checker, manifest, 'csv', options);
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
  const data = parseJson(dataText);
  if (data === undefined) return failure(seq, `${where}: data is not JSON`);
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

async function verifyJsonExport(parsed: unknown, options: VerifyOptions): Promise<VerifyResult> {
  if (!isRecord(parsed) || !Array.isArray(parsed.events))
    return failure(null, 'a JSON export must be { "events": [...], "manifest": {...} }');
  const manifest = parseManifest(parsed.manifest, 'json');
  if (typeof manifest === 'string') return failure(null, manifest);
  const checker = new ExportChecker(manifest, options.jwks);
  for (const [index, event] of parsed.events.entries()) {
    const broken = checker.event(event, `events[${index}]`);
    if (broken) return broken;
  }
  return checker.finish() ?? signed(checker, manifest, 'json', options);
}

/** Checks events one at a time, in file order, against the chain rules, the manifest's filters and the evidence rules. */
class ExportChecker {
  readonly counts: VerifyCounts = { events: 0, approvals: 0, assertions: 0, requests: 0, checkpoints: 0 };
  private previous: { seq: number; hash: Buffer } | null = null;
  private firstSeq: number | null = null;
  private readonly digest = new EventsDigest();
  /** Request id → the digest of its request.created subject (and what the entitlement filter needs). */
  private readonly subjects = new Map<string, { digest: string; entitlementId: unknown; seq: number }>();
  /** Credential id → its COSE public key: one credential never has two keys. */
  private readonly credentialKeys = new Map<string, string>();
  /** An unfiltered export holds the whole chain: seq 1 to the chain head, nothing missing. */
  private readonly complete: boolean;

  constructor(
    private readonly manifest: ExportManifest,
    /** The pinned audit keys, when given: checkpoints are checked against them like the manifest. */
    private readonly jwks?: readonly JsonWebKey[],
  ) {
    this.complete = Object.keys(manifest.filters).length === 0;
  }

  subjectOf(requestId: string): { digest: string; seq: number } | undefined {
    return this.subjects.get(requestId);
  }

  /** Checks the next event in file order; null when it holds. */
  event(value: unknown, where: string): VerifyFailure | null {
    const event = parseEvent(value);
    if (typeof event === 'string') {
      const seq = isRecord(value) && Number.isSafeInteger(value.seq) ? (value.seq as number) : null;
      return failure(seq, `${where}: ${event}`);
    }
    const { seq } = event;
    const previous = this.previous;
    if (previous !== null && seq <= previous.seq) {
      return failure(
        seq,
        `seq ${seq} comes after seq ${previous.seq}: events must be in increasing seq order`,
      );
    }
    if (this.complete) {
      const expected = previous === null ? 1 : previous.seq + 1;
      if (seq !== expected)
        return failure(
          seq,
          `expected seq ${expected}, found ${seq} (an unfiltered export holds every event)`,
        );
    }
    const prevHash = Buffer.from(event.prevHash, 'hex');
    if (seq === 1 && !prevHash.equals(GENESIS_HASH))
      return failure(seq, 'the first event of the chain has a non-zero prevHash');
    if (previous !== null && seq === previous.seq + 1 && !prevHash.equals(previous.hash)) {
      return failure(seq, 'prevHash does not match the previous event');
    }
    const { hash, ...body } = event;
    const recomputed = chainHash(prevHash, body);
    if (recomputed.toString('hex') !== hash) return failure(seq, 'hash does not match the event content');
    const outside = this.outsideFilters(event);
    if (outside) return failure(seq, `the event does not match the export's filter ${outside}`);
    const broken = this.checkSubjectAndEvidence(event) ?? this.checkCheckpoint(event);
    if (broken) return failure(seq, broken);

    this.previous = { seq, hash: recomputed };
    this.firstSeq ??= seq;
    this.digest.add(hash);
    this.counts.events++;
    return null;
  }

  /** After the last event: the manifest's totals against what the file held. */
  finish(): VerifyFailure | null {
    const { manifest, counts } = this;
    const lastSeq = this.previous?.seq ?? null;
    const lastHash = this.previous?.hash.toString('hex') ?? null;
    if (manifest.count !== counts.events) {
      return failure(null, `the manifest counts ${manifest.count} events, the file holds ${counts.events}`);
    }
    if (manifest.firstSeq !== this.firstSeq || manifest.lastSeq !== lastSeq) {
      return failure(
        null,
        `the manifest says seq ${manifest.firstSeq}..${manifest.lastSeq}, the file holds ${this.firstSeq}..${lastSeq}`,
      );
    }
    if (manifest.lastHash !== lastHash)
      return failure(lastSeq, 'the manifest lastHash is not the hash of the last event');
    if (manifest.eventsDigest !== this.digest.hex()) {
      return failure(
        null,
        'eventsDigest does not match the events in the file: one was removed, added, replaced or moved',
      );
    }
    const headSeq = manifest.chainHead.seq;
    if (lastSeq !== null && lastSeq > headSeq)
      return failure(lastSeq, 'the export holds an event after its chain head');
    if (lastSeq === headSeq && lastHash !== manifest.chainHead.hash) {
      return failure(lastSeq, 'the last event is the chain head but its hash is not the head hash');
    }
    if (this.complete && (lastSeq ?? 0) !== headSeq) {
      return failure(
        null,
        `an unfiltered export must end at the chain head (seq ${headSeq}), this one ends at ${lastSeq ?? 'no event'}`,
      );
    }
    return null;
  }

  private outsideFilters(event: ExportedEvent): string | null {
    const { filters } = this.manifest;
    if (filters.actorId !== undefined && event.actorId !== filters.actorId) return 'actorId';
    if (filters.action !== undefined && event.action !== filters.action) return 'action';
    if (filters.requestId !== undefined && event.requestId !== filters.requestId) return 'requestId';
    const at = Date.parse(event.at);
    if (filters.from !== undefined && !(at >= Date.parse(filters.from))) return 'from';
    if (filters.to !== undefined && !(at < Date.parse(filters.to))) return 'to';
    if (filters.entitlementId !== undefined) {
      const subject = event.requestId === null ? undefined : this.subjects.get(event.requestId);
      const created =
        event.action === 'request.created' && isRecord(event.data.subject) ? event.data.subject : undefined;
      const entitlementId = created?.entitlementId ?? subject?.entitlementId;
      if (
        event.requestId === null ||
        (entitlementId !== undefined && entitlementId !== filters.entitlementId)
      ) {
        return 'entitlementId';
      }
    }
    return null;
  }

  /**
   * An audit.checkpoint signs the chain head just before its own event: its seq is the previous seq, its hash
   * the event's prevHash (so, when that event is in the file, its hash), and the signature is the audit key's.
   */
  private checkCheckpoint(event: ExportedEvent): string | null {
    if (event.action !== CHECKPOINT_ACTION) return null;
    const checkpoint = parseCheckpointData(event.data);
    if (typeof checkpoint === 'string') return checkpoint;
    if (checkpoint.seq !== event.seq - 1) {
      return `the checkpoint covers seq ${checkpoint.seq}, not the event before it (seq ${event.seq - 1})`;
    }
    if (checkpoint.hash !== event.prevHash)
      return 'the checkpoint hash is not the hash of the event before it (prevHash)';
    const { manifest } = this;
    const jwk =
      this.jwks !== undefined
        ? this.jwks.find((key) => key.kid === checkpoint.kid)
        : checkpoint.kid === manifest.kid
          ? manifest.publicJwk
          : undefined;
    if (jwk === undefined) {
      return this.jwks !== undefined
        ? `the checkpoint is signed by key ${JSON.stringify(checkpoint.kid)}, which is not among the pinned keys`
        : `the checkpoint is signed by key ${JSON.stringify(checkpoint.kid)}, not the manifest's: verify with the broker audit JWKS (--jwks)`;
    }
    if (!checkpointSignatureValid(checkpoint, jwk)) {
      return `the checkpoint signature does not verify with key ${JSON.stringify(checkpoint.kid)}`;
    }
    this.counts.checkpoints++;
    return null;
  }

  private checkSubjectAndEvidence(event: ExportedEvent): string | null {
    const { data } = event;
    if (event.action === 'request.created' && data.subject !== undefined) {
      const subject = data.subject;
      if (!isRecord(subject) || subject.id !== event.subjectId)
        return 'request.created subject.id is not the event subjectId';
      let digest: string;
      try {
        digest = subjectDigest(subject);
      } catch (error) {
        return `request.created subject is not plain JSON: ${(error as Error).message}`;
      }
      this.subjects.set(event.subjectId, { digest, entitlementId: subject.entitlementId, seq: event.seq });
      this.counts.requests++;
    }
    if (data.evidence === undefined) {
      return event.action === 'approval.recorded' ? 'approval.recorded carries no step-up evidence' : null;
    }
    const evidence = parseStepUpEvidence(data.evidence);
    if (typeof evidence === 'string') return evidence;
    if (evidence.userId !== event.actorId) return "evidence.userId is not the event's actorId";
    const fitting = EVIDENCE_ACTIONS[event.action];
    if (fitting !== undefined && !fitting.includes(evidence.action)) {
      return `evidence.action ${JSON.stringify(evidence.action)} does not authorise ${event.action}`;
    }
    if (
      event.action === 'approval.recorded' &&
      data.decision !== undefined &&
      data.decision !== evidence.action
    ) {
      return 'evidence.action is not the recorded decision';
    }
    if (REQUEST_ACTIONS.has(evidence.action)) {
      if (evidence.subjectId !== event.subjectId)
        return 'evidence.subjectId is not the request this event records';
      const created = this.subjects.get(evidence.subjectId);
      if (created !== undefined && created.digest !== evidence.subjectDigest) {
        return `evidence.subjectDigest is not the digest of the request subject committed at seq ${created.seq}`;
      }
    }
    const knownKey = this.credentialKeys.get(evidence.credentialId);
    if (knownKey !== undefined && knownKey !== evidence.publicKey) {
      return 'evidence.publicKey differs from the key this credential signed with earlier in the file';
    }
    const broken = checkStepUpAssertion(evidence, this.manifest);
    if (broken) return broken;
    this.credentialKeys.set(evidence.credentialId, evidence.publicKey);
    this.counts.assertions++;
    if (event.action === 'approval.recorded') this.counts.approvals++;
    return null;
  }
}

/** Last check: the manifest signature, against a pinned key when jwks are given, else the embedded one. */
function signed(
  checker: ExportChecker,
  manifest: ExportManifest,
  format: ExportFormat | 'bundle',
  options: VerifyOptions,
): VerifyResult {
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
  const signature = decodeBase64Url(manifest.signature);
  let valid: boolean;
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' });
    valid = signature !== null && verify(null, manifestSigningInput(manifest), key, signature);
  } catch {
    valid = false;
  }
  if (!valid) {
    return failure(
      null,
      `the manifest signature does not verify with ${pinned ? 'pinned' : 'embedded'} key ${JSON.stringify(manifest.kid)}`,
    );
  }
  return { ok: true, format, counts: checker.counts, manifest, keyPinned: pinned };
}

function parseEvent(value: unknown): ExportedEvent | string {
  if (!isRecord(value)) return 'not an event object';
  const extra = Object.keys(value).filter((key) => !(EXPORT_COLUMNS as readonly string[]).includes(key));
  if (extra.length > 0) return `unexpected field(s) ${extra.join(', ')}`;
  const { seq, at, actorId, action, subjectType, subjectId, requestId, data, prevHash, hash } = value;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1)
    return 'seq is not a positive integer';
  for (const [name, field] of Object.entries({ at, actorId, action, subjectType, subjectId })) {
    if (typeof field !== 'string') return `${name} is not a string`;
  }
  if (requestId !== null && typeof requestId !== 'string') return 'requestId is neither a string nor null';
  if (!isRecord(data)) return 'data is not an object';
  if (typeof prevHash !== 'string' || !HEX_32.test(prevHash))
    return 'prevHash is not 64 lowercase hex digits';
  if (typeof hash !== 'string' || !HEX_32.test(hash)) return 'hash is not 64 lowercase hex digits';
  return value as unknown as ChainedEvent & { hash: string };
}

function parseManifest(value: unknown, format: ExportFormat | 'bundle'): ExportManifest | string {
  if (!isRecord(value) || value.type !== 'manifest')
    return 'no manifest at the end of the file: the export is truncated';
  const manifest = value as unknown as ExportManifest;
  if (manifest.version !== 1) return `manifest version ${JSON.stringify(manifest.version)} is not supported`;
  if (manifest.format !== format) {
    return `the manifest says format ${JSON.stringify(manifest.format)}, the file is ${format}`;
  }
  if (format !== 'bundle' && !(EXPORT_FORMATS as readonly string[]).includes(manifest.format))
    return 'unknown manifest format';
  const isSeq = (seq: unknown) =>
    seq === null || (typeof seq === 'number' && Number.isSafeInteger(seq) && seq > 0);
  if (!Number.isSafeInteger(manifest.count) || manifest.count < 0)
    return 'manifest count is not a whole number';
  if (!isSeq(manifest.firstSeq) || !isSeq(manifest.lastSeq)) return 'manifest firstSeq/lastSeq are not seqs';
  if (
    manifest.lastHash !== null &&
    !(typeof manifest.lastHash === 'string' && HEX_32.test(manifest.lastHash))
  ) {
    return 'manifest lastHash is not a hash';
  }
  if (typeof manifest.eventsDigest !== 'string' || !HEX_32.test(manifest.eventsDigest))
    return 'manifest eventsDigest is not a hash';
  const { filters, chainHead } = manifest;
  if (
    !isRecord(filters) ||
    Object.entries(filters).some(([key, item]) => !FILTER_KEYS.has(key) || typeof item !== 'string')
  ) {
    return 'manifest filters are malformed';
  }
  if (
    !isRecord(chainHead) ||
    !Number.isSafeInteger(chainHead.seq) ||
    chainHead.seq < 0 ||
    typeof chainHead.hash !== 'string' ||
    !HEX_32.test(chainHead.hash)
  ) {
    return 'manifest chainHead is malformed';
  }
  if (typeof manifest.rpId !== 'string' || manifest.rpId === '') return 'manifest rpId is missing';
  if (!Array.isArray(manifest.origins) || manifest.origins.some((origin) => typeof origin !== 'string')) {
    return 'manifest origins are not a list of strings';
  }
  if (
    typeof manifest.kid !== 'string' ||
    manifest.alg !== 'EdDSA' ||
    typeof manifest.signature !== 'string'
  ) {
    return 'the manifest is not signed (kid, alg "EdDSA", signature)';
  }
  if (manifest.publicJwk !== undefined && !isRecord(manifest.publicJwk))
    return 'manifest publicJwk is not a JWK';
  return manifest;
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

/** The last line that is not blank, or ''. */
function lastLineOf(text: string): string {
  let end = text.length;
  while (end > 0) {
    const start = text.lastIndexOf('\n', end - 1) + 1;
    const line = text.slice(start, end);
    if (line.trim() !== '') return line;
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

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function failure(seq: number | null, reason: string): VerifyFailure {
  return { ok: false, seq, reason };
}
