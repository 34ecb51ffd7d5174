import type { Writable } from 'node:stream';
import { DomainError, ErrorCode } from '../domain/errors.js';
import type { AuditEventEntity } from '../db/index.js';
import { auditPrivateKey, type AuditKeySource } from './audit-key.js';
import { toChainedEvent } from './audit-log.js';
import { EXPORT_LAYOUTS } from './export-layout.js';
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
  /** Rows per keyset page; 500 unless a test wants many pages. */
  pageSize?: number;
}

/** The chain head read when an export starts: nothing after it is exported, so the snapshot is consistent. */
export interface ChainHeadSnapshot {
  seq: number;
  hash: string;
  /** PostgreSQL's clock at that moment. */
  now: Date;
}

const DEFAULT_PAGE_SIZE = 500;
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
 * and an event is committed together with the head that counts it.
 */
export async function* readAuditEventPages(
  source: AuditSource,
  filters: ExportFilters,
  headSeq: number,
  pageSize: number = DEFAULT_PAGE_SIZE,
): AsyncGenerator<ExportedEvent[]> {
  let last = 0;
  for (;;) {
    const { text, values } = auditPageQuery(filters, last, headSeq, pageSize);
    const rows = rowsOf(await runQuery(source, text, values)) as AuditEventEntity[];
    if (rows.length === 0) return;
    const events = rows.map(toChainedEvent);
    yield events;
    if (rows.length < pageSize) return;
    last = events[events.length - 1].seq;
  }
}

/** The SQL of one keyset page; parameters $1 = last seq read, $2 = head seq at start, the filters, then the limit. */
export function auditPageQuery(
  filters: ExportFilters,
  afterSeq: number,
  headSeq: number,
  limit: number,
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
  const text = `SELECT seq, at, actor_id AS "actorId", action, subject_type AS "subjectType",
       subject_id AS "subjectId", request_id AS "requestId", data, prev_hash AS "prevHash", hash
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
  for await (const page of readAuditEventPages(source, filters, head.seq, options.pageSize)) {
    let chunk = '';
    for (const event of page) {
      chunk += layout.event(event, count);
      digest.add(event.hash);
      first ??= event;
      last = event;
      count++;
    }
    await write(out, chunk);
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
