import type { Writable } from 'node:stream';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { auditPrivateKey, type AuditKeySource } from './audit-key.js';
import { EXPORT_LAYOUTS, type ExportLayout } from './export-layout.js';
import {
  EXPORT_FORMATS,
  EventsDigest,
  manifestSignerFromKey,
  type ExportedEvent,
  type ExportFilters,
  type ExportFormat,
  type ExportManifest,
  type ManifestSigner,
} from './manifest.js';

/** Runs one SQL statement; a TypeORM DataSource or EntityManager, a pg Pool or Client, or a plain function. */
export type AuditSource =
  | ((sql: string, parameters: unknown[]) => Promise<unknown>)
  | { query(sql: string, parameters?: unknown[]): Promise<unknown> };

/** Export filters as a caller gives them; times may be Dates or ISO 8601 strings. */
export interface AuditExportFilters {
  from?: Date | string;
  to?: Date | string;
  actorId?: string;
  entitlementId?: string;
  requestId?: string;
  action?: string;
}

export interface AuditExportOptions {
  source: AuditSource;
  filters?: AuditExportFilters;
  format: ExportFormat;
  out: Writable;
  signManifest: ManifestSigner;
  /** The exporting user's id, recorded in the manifest. */
  exporter: string;
  rpId: string;
  origins: readonly string[];
  /** Rows per keyset page; DEFAULT_PAGE_SIZE (1000) unless a test wants many pages. */
  pageSize?: number;
}

/** The chain head read when an export starts: nothing after it is exported, so the snapshot is consistent. */
export interface ChainHeadSnapshot {
  seq: number;
  hash: string;
  /** PostgreSQL's clock at that moment. */
  now: Date;
}

const DEFAULT_PAGE_SIZE = 1000;
/** Characters per write to the output. */
const WRITE_BYTES = 64 * 1024;
/** The columns as stored (a Date, Buffers): what toChainedEvent takes. */
const ENTITY_SELECT = `SELECT seq, at, actor_id AS "actorId", action, subject_type AS "subjectType",
       subject_id AS "subjectId", request_id AS "requestId", data, prev_hash AS "prevHash", hash`;
/**
 * The columns as an export writes them: PostgreSQL formats the time as toISOString does (UTC, milliseconds
 * truncated, as the driver's Date would be) and the hashes as hex, so a row needs no Date or Buffer; data
 * comes as text, parsed (as the driver would) only when its line is written.
 */
const EXPORT_SELECT = `SELECT seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at,
       actor_id AS "actorId", action, subject_type AS "subjectType", subject_id AS "subjectId",
       request_id AS "requestId", data::text AS data, encode(prev_hash, 'hex') AS "prevHash",
       encode(hash, 'hex') AS hash`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FILTER_KEYS = ['from', 'to', 'actorId', 'entitlementId', 'requestId', 'action'] as const;

/** Validates export filters and returns them as the manifest records them; a bad filter is a VALIDATION_FAILED. */
export function normaliseAuditFilters(filters: AuditExportFilters = {}): ExportFilters {
  const unknown = Object.keys(filters).filter((key) => !(FILTER_KEYS as readonly string[]).includes(key));
  if (unknown.length > 0) invalid(`unknown filter(s): ${unknown.join(', ')}`);
  const normalised: ExportFilters = {};
  for (const key of ['from', 'to'] as const) {
    const value = filters[key];
    if (value === undefined) continue;
    const time = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : null;
    if (time === null || Number.isNaN(time.getTime())) invalid(`filter ${key} must be an ISO 8601 time`);
    normalised[key] = time.toISOString();
  }
  if (normalised.from !== undefined && normalised.to !== undefined && normalised.from >= normalised.to) {
    invalid('filter from must be before to');
  }
  for (const key of ['actorId', 'entitlementId', 'requestId', 'action'] as const) {
    const value = filters[key];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.length === 0) invalid(`filter ${key} must be a non-empty string`);
    normalised[key] = value;
  }
  if (normalised.requestId !== undefined && !UUID.test(normalised.requestId)) {
    invalid('filter requestId must be a UUID');
  }
  return normalised;
}

/** The chain head now; an export reads no event after it. */
export async function readChainHead(source: AuditSource): Promise<ChainHeadSnapshot> {
  const [head] = rowsOf(
    await runQuery(source, 'SELECT seq, hash, now() AS now FROM audit_chain_head WHERE id = 1', []),
  ) as Array<{ seq: string | number; hash: Buffer; now: Date }>;
  if (head === undefined) throw new Error('audit_chain_head has no row: the database is not migrated');
  return { seq: Number(head.seq), hash: head.hash.toString('hex'), now: new Date(head.now) };
}

/**
 * The events matching `filters` up to `headSeq`, page by page in seq order. Keyset pagination
 * (`seq > last … ORDER BY seq LIMIT n`) keeps each query cheap and memory flat; no transaction stays open
 * between pages, and the upper bound makes the result a consistent snapshot because the chain is append-only
 * and an event is committed together with the head that counts it. The next page is read while the caller
 * writes this one (one page ahead, asked for only when the caller comes back for more, so a caller waiting
 * for 'drain' holds at most two pages).
 */
export async function* readAuditEventPages(
  source: AuditSource,
  filters: ExportFilters,
  headSeq: number,
  pageSize: number = DEFAULT_PAGE_SIZE,
): AsyncGenerator<ExportedEvent[]> {
  for await (const rows of readRowPages(source, filters, headSeq, pageSize)) yield rows.map(exportedEventOf);
}

/**
 * readAuditEventPages as the rows come: text, so that the page read ahead holds a few strings per event, not
 * the parsed objects of its data (which would outlive the young generation while the output drains).
 */
async function* readRowPages(
  source: AuditSource,
  filters: ExportFilters,
  headSeq: number,
  pageSize: number = DEFAULT_PAGE_SIZE,
): AsyncGenerator<ExportRow[]> {
  const readPage = async (afterSeq: number): Promise<ExportRow[]> => {
    const { text, values } = auditPageQuery(filters, afterSeq, headSeq, pageSize, EXPORT_SELECT);
    return rowsOf(await runQuery(source, text, values)) as ExportRow[];
  };
  let next: Promise<ExportRow[]> | null = readPage(0);
  while (next !== null) {
    const rows: ExportRow[] = await next;
    if (rows.length === 0) return;
    next = rows.length < pageSize ? null : readPage(Number(rows[rows.length - 1].seq));
    // A failed read ahead surfaces when it is awaited, not as an unhandled rejection meanwhile.
    next?.catch(() => undefined);
    yield rows;
  }
}

/** The events after `afterSeq` up to `headSeq` (at most `limit`), exactly as an export writes them. */
export async function readExportedEvents(
  source: AuditSource,
  afterSeq: number,
  headSeq: number,
  limit: number,
): Promise<ExportedEvent[]> {
  const { text, values } = auditPageQuery({}, afterSeq, headSeq, limit, EXPORT_SELECT);
  return (rowsOf(await runQuery(source, text, values)) as ExportRow[]).map(exportedEventOf);
}

/** A page row as EXPORT_SELECT reads it, or as the entity columns do (Date, Buffer): both are accepted. */
interface ExportRow {
  seq: string | number;
  at: string | Date;
  actorId: string;
  action: string;
  subjectType: string;
  subjectId: string;
  requestId: string | null;
  data: string | Record<string, unknown>;
  prevHash: string | Buffer;
  hash: string | Buffer;
}

function exportedEventOf(row: ExportRow): ExportedEvent {
  return {
    seq: Number(row.seq),
    at: typeof row.at === 'string' ? row.at : row.at.toISOString(),
    actorId: row.actorId,
    action: row.action,
    subjectType: row.subjectType,
    subjectId: row.subjectId,
    requestId: row.requestId,
    data: typeof row.data === 'string' ? (JSON.parse(row.data) as Record<string, unknown>) : row.data,
    prevHash: typeof row.prevHash === 'string' ? row.prevHash : row.prevHash.toString('hex'),
    hash: typeof row.hash === 'string' ? row.hash : row.hash.toString('hex'),
  };
}

/** The SQL of one keyset page; parameters $1 = last seq read, $2 = head seq at start, the filters, then the limit. */
export function auditPageQuery(
  filters: ExportFilters,
  afterSeq: number,
  headSeq: number,
  limit: number,
  select: string = ENTITY_SELECT,
): { text: string; values: unknown[] } {
  const values: unknown[] = [afterSeq, headSeq];
  const where = ['seq > $1', 'seq <= $2'];
  const bind = (value: unknown) => `$${values.push(value)}`;
  if (filters.from !== undefined) where.push(`at >= ${bind(new Date(filters.from))}`);
  if (filters.to !== undefined) where.push(`at < ${bind(new Date(filters.to))}`);
  if (filters.actorId !== undefined) where.push(`actor_id = ${bind(filters.actorId)}`);
  if (filters.action !== undefined) where.push(`action = ${bind(filters.action)}`);
  if (filters.requestId !== undefined) where.push(`request_id = ${bind(filters.requestId)}`);
  if (filters.entitlementId !== undefined) {
    where.push(
      `request_id IN (SELECT id FROM elevation_requests WHERE entitlement_id = ${bind(filters.entitlementId)})`,
    );
  }
  const text = `${select}
  FROM audit_events
 WHERE ${where.join(' AND ')}
 ORDER BY seq
 LIMIT ${bind(limit)}`;
  return { text, values };
}

/**
 * Streams an audit export to `out` and ends it: the events matching the filters up to the chain head read at
 * the start, then the signed manifest, laid out as EXPORT_LAYOUTS says (every event and the manifest in JCS,
 * the canonical form the verifier requires). Writes wait for 'drain', so memory stays flat for any size.
 * Returns the manifest. If it throws after writing began, the output has no manifest and the verifier calls
 * it truncated; the caller should destroy `out`.
 */
export async function streamAuditExport(options: AuditExportOptions): Promise<ExportManifest> {
  const { source, format, out, signManifest } = options;
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) {
    invalid(`format must be one of: ${EXPORT_FORMATS.join(', ')}`);
  }
  const filters = normaliseAuditFilters(options.filters);
  const head = await readChainHead(source);
  const layout = EXPORT_LAYOUTS[format];
  const digest = new EventsDigest();
  let count = 0;
  let first: ExportedEvent | null = null;
  let last: ExportedEvent | null = null;

  await write(out, layout.start());
  for await (const rows of readRowPages(source, filters, head.seq, options.pageSize)) {
    const page = formatPage(rows, layout, digest, count);
    count += rows.length;
    first ??= page.first;
    last = page.last;
    for (const chunk of page.chunks) await write(out, chunk);
  }
  const body = {
    type: 'manifest' as const,
    version: 1 as const,
    format,
    count,
    firstSeq: first?.seq ?? null,
    lastSeq: last?.seq ?? null,
    lastHash: last?.hash ?? null,
    eventsDigest: digest.hex(),
    filters,
    chainHead: { seq: head.seq, hash: head.hash },
    exporter: options.exporter,
    exportedAt: head.now.toISOString(),
    rpId: options.rpId,
    origins: [...options.origins],
  };
  const manifest: ExportManifest = { ...body, ...(await signManifest(body)) };
  await write(out, layout.end(manifest));
  await new Promise<void>((resolve, reject) => {
    out.once('error', reject);
    out.end(() => {
      out.off('error', reject);
      resolve();
    });
  });
  return manifest;
}

/**
 * A page as the layout writes it, in flat strings of about WRITE_BYTES (joined, not += of thousands of pieces:
 * cheap to encode, and small enough that the socket's copies are reused rather than left to grow the heap).
 * The whole page is formatted before any write waits, so its parsed events die young.
 */
function formatPage(
  rows: readonly ExportRow[],
  layout: ExportLayout,
  digest: EventsDigest,
  startIndex: number,
): { chunks: string[]; first: ExportedEvent; last: ExportedEvent } {
  const chunks: string[] = [];
  let lines: string[] = [];
  let length = 0;
  let first: ExportedEvent | null = null;
  let last: ExportedEvent | null = null;
  for (let index = 0; index < rows.length; index++) {
    const event = exportedEventOf(rows[index]);
    const text = layout.event(event, startIndex + index);
    lines.push(text);
    length += text.length;
    digest.add(event.hash);
    first ??= event;
    last = event;
    if (length >= WRITE_BYTES) {
      chunks.push(lines.join(''));
      lines = [];
      length = 0;
    }
  }
  if (lines.length > 0) chunks.push(lines.join(''));
  return { chunks, first: first!, last: last! };
}

/** A ManifestSigner over the broker's current 'audit' key (Ed25519, encrypted at rest in PostgreSQL). */
export function signAuditManifest(store: AuditKeySource): ManifestSigner {
  return async (body) => {
    const key = await store.currentKey('audit');
    return manifestSignerFromKey(key.kid, auditPrivateKey(key))(body);
  };
}

/** Writes one chunk, waiting for 'drain' when the stream's buffer is full; fails if the stream closes first. */
async function write(out: Writable, chunk: string): Promise<void> {
  if (chunk === '') return;
  if (out.destroyed || out.writableEnded)
    throw new Error('the export output closed before the export finished');
  if (out.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const settle = (error?: Error) => {
      out.off('drain', onDrain);
      out.off('close', onClose);
      out.off('error', onError);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => settle();
    const onClose = () => settle(new Error('the export output closed before the export finished'));
    const onError = (error: Error) => settle(error);
    out.on('drain', onDrain);
    out.on('close', onClose);
    out.on('error', onError);
  });
}

/** Calls a source the way it wants to be called and returns its rows (pg answers `{ rows }`, TypeORM an array). */
export async function runQuery(source: AuditSource, sql: string, parameters: unknown[]): Promise<unknown> {
  return typeof source === 'function' ? source(sql, parameters) : source.query(sql, parameters);
}

export function rowsOf(result: unknown): unknown[] {
  if (Array.isArray(result)) return result;
  const rows = (result as { rows?: unknown } | null)?.rows;
  if (Array.isArray(rows)) return rows;
  throw new TypeError('the audit source returned neither rows nor { rows }');
}

function invalid(message: string): never {
  throw new DomainError(ErrorCode.VALIDATION_FAILED, message);
}
