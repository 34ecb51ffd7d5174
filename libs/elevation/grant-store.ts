import type { EntityManager } from 'typeorm';
import { ElevationRequestEntity, GrantEntity } from '../db/index.js';
import { namedQuery } from '../db/named-query.js';
import { GrantState, type FailedRevocation } from '../domain/grant-state.js';
import { requestColumns } from './request-store.js';

// Locking and SQL of grants: plain functions over the caller's transaction. GrantsService (the grants' one
// writer) calls the writes; RequestQueries reads `grantStatuses` for request views. Lock order as everywhere:
// request → grant → audit chain head.

// Fixed first key of the overlap-key advisory lock, so it never meets another lock of ours.
const OVERLAP_LOCK_CLASS = 0x6a69746f; // "jito"

/** A grant as operators list it, with the request it serves. */
export interface GrantListItem {
  id: string;
  requestId: string;
  connector: string;
  connectorType: string;
  fingerprint: string;
  issuedAt: Date;
  notAfter: Date;
  state: GrantState;
  revokedAt: Date | null;
  revokeAttempts: number;
  lastError: string | null;
  nextRetryAt: Date | null;
  requester: string;
  entitlementId: string;
}

/** A request's grant as its view shows it: the connector's confirmed state, attempts, next retry, error. */
export type GrantStatus = Pick<
  GrantEntity,
  'state' | 'revokeAttempts' | 'nextRetryAt' | 'revokedAt' | 'lastError'
>;

/** Loads a grant without a lock; null when there is none. */
export function findGrant(manager: EntityManager, id: string): Promise<GrantEntity | null> {
  return selectGrant(manager, id, '');
}

/** Loads and row-locks a grant (FOR UPDATE); null when there is none. */
export function lockGrant(manager: EntityManager, id: string): Promise<GrantEntity | null> {
  return selectGrant(manager, id, 'FOR UPDATE');
}

// Plain SQL on the revocation path (each revocation reads its grant twice): TypeORM's find builds its query
// anew on every call, a large share of the worker's CPU. Every mapped column, named as the entity's property.
let grantColumns: string | undefined;

function columnsOf(manager: EntityManager): string {
  return manager.connection
    .getMetadata(GrantEntity)
    .columns.map((column) => `${column.databaseName} AS "${column.propertyName}"`)
    .join(', ');
}

async function selectGrant(manager: EntityManager, id: string, lock: '' | 'FOR UPDATE') {
  grantColumns ??= columnsOf(manager);
  const [row] = (await manager.query(`SELECT ${grantColumns} FROM grants WHERE id = $1 ${lock}`, [
    id,
  ])) as GrantEntity[];
  return row ? Object.assign(new GrantEntity(), row) : null;
}

/**
 * A grant as the revocation job first reads it, in one named statement: the row, how long until its notAfter
 * by PostgreSQL's clock, and the policy version of its request (which connector settings revoke it).
 */
export async function findForRevocation(
  manager: EntityManager,
  id: string,
): Promise<{ grant: GrantEntity; remainingMs: number; policyHash: string } | null> {
  grantColumns ??= columnsOf(manager);
  const [row] = await namedQuery<GrantEntity & { remainingMs: number; policyHash: string }>(
    manager,
    'grant-for-revocation',
    `SELECT ${grantColumns.replaceAll(/(^|, )/g, '$1g.')},
            (extract(epoch FROM (g.not_after - now())) * 1000)::float8 AS "remainingMs",
            (SELECT r.policy_hash FROM elevation_requests r WHERE r.id = g.request_id) AS "policyHash"
       FROM grants g WHERE g.id = $1`,
    [id],
  );
  if (!row) return null;
  const { remainingMs, policyHash, ...grant } = row;
  return { grant: Object.assign(new GrantEntity(), grant), remainingMs, policyHash };
}

/** Row-locks the grants of requests already locked, before any audit append (request → grant → chain head). */
export async function lockGrantsOf(manager: EntityManager, requestIds: string[]): Promise<void> {
  if (requestIds.length === 0) return;
  await manager.query(`SELECT id FROM grants WHERE request_id = ANY($1) ORDER BY id FOR UPDATE`, [
    requestIds,
  ]);
}

/** Inserts a newly minted grant. */
export async function insertGrant(manager: EntityManager, grant: GrantEntity): Promise<void> {
  await manager.insert(GrantEntity, grant);
}

/** Marks the request's unrevoked grants due now (an early revoke), ACTIVE ones REVOKING; returns their ids. */
export async function markRevokeRequested(
  manager: EntityManager,
  requestId: string,
  reason: string,
): Promise<string[]> {
  const [grants] = (await manager.query(
    `UPDATE grants SET revoke_requested_at = now(), revoke_reason = $2,
            state = CASE WHEN state = $4 THEN $5 ELSE state END
      WHERE request_id = $1 AND state <> $3 AND revoke_requested_at IS NULL RETURNING id`,
    [requestId, reason, GrantState.REVOKED, GrantState.ACTIVE, GrantState.REVOKING],
  )) as [Array<{ id: string }>, number];
  return grants.map((grant) => grant.id);
}

/**
 * Marks an ACTIVE grant REVOKING (its revocation fell due at notAfter) and returns PostgreSQL's clock once
 * the row is updated; null when it was not ACTIVE.
 */
export async function markRevoking(manager: EntityManager, id: string): Promise<Date | null> {
  const [row] = await namedQuery<{ now: Date }>(
    manager,
    'grant-mark-revoking',
    `UPDATE grants SET state = $3 WHERE id = $1 AND state = $2 RETURNING clock_timestamp() AS now`,
    [id, GrantState.ACTIVE, GrantState.REVOKING],
  );
  return row?.now ?? null;
}

/** Marks a grant REVOKED now, the moment the connector confirmed (PostgreSQL's clock); returns when. */
export async function markRevoked(manager: EntityManager, id: string): Promise<Date> {
  const [{ revokedAt }] = await namedQuery<{ revokedAt: Date }>(
    manager,
    'grant-mark-revoked',
    `UPDATE grants SET state = $2, revoked_at = clock_timestamp(), next_retry_at = NULL WHERE id = $1
     RETURNING revoked_at AS "revokedAt"`,
    [id, GrantState.REVOKED],
  );
  return revokedAt;
}

/**
 * Row-locks the grant's request, then marks the grant REVOKED now (PostgreSQL's clock) unless it already is,
 * in one named statement (lock order request → grant, as everywhere): the request as locked (null when there
 * is none) and the grant as updated (null when it was REVOKED before or does not exist). For revocations that
 * need no connector call.
 */
export async function lockRequestAndRevoke(
  manager: EntityManager,
  grant: Pick<GrantEntity, 'id' | 'requestId'>,
): Promise<{ request: ElevationRequestEntity | null; revoked: GrantEntity | null }> {
  grantColumns ??= columnsOf(manager);
  // The request's CTE gates the UPDATE (a one-time filter, evaluated before the grants scan; a FOR UPDATE CTE
  // is never inlined), so the statement waits for the request's row lock holding no grant lock. After such a
  // wait the UPDATE re-checks the grant as last committed: one revoked meanwhile comes back null.
  const [row] = await namedQuery<Record<string, unknown>>(
    manager,
    'grant-revoke-locking-request',
    `WITH request AS (SELECT ${requestColumns(manager)} FROM elevation_requests WHERE id = $1 FOR UPDATE),
          revoked AS (
            UPDATE grants SET state = $3, revoked_at = clock_timestamp(), next_retry_at = NULL
             WHERE id = $2 AND state <> $3 AND (SELECT count(*) FROM request) >= 0
            RETURNING ${grantColumns.replaceAll(/ AS "([^"]+)"/g, ' AS "grant.$1"')})
     SELECT request.*, revoked.* FROM (SELECT 1) AS one
       LEFT JOIN request ON true LEFT JOIN revoked ON true`,
    [grant.requestId, grant.id, GrantState.REVOKED],
  );
  const requestFields: Record<string, unknown> = {};
  const grantFields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(row)) {
    if (key.startsWith('grant.')) grantFields[key.slice('grant.'.length)] = value;
    else requestFields[key] = value;
  }
  return {
    request: requestFields.id ? Object.assign(new ElevationRequestEntity(), requestFields) : null,
    revoked: grantFields.id ? Object.assign(new GrantEntity(), grantFields) : null,
  };
}

/** Records a failed revocation attempt: its count, error, next retry, and REVOKE_FAILED after the last one. */
export async function recordAttempt(
  manager: EntityManager,
  id: string,
  { state, revokeAttempts, lastError, nextRetryAt }: FailedRevocation,
): Promise<void> {
  await manager.update(GrantEntity, { id }, { state, revokeAttempts, lastError, nextRetryAt });
}

/** The grant of each of these requests that has one, by request id. */
export async function grantStatuses(
  manager: EntityManager,
  requestIds: string[],
): Promise<Map<string, GrantStatus>> {
  if (requestIds.length === 0) return new Map();
  const rows = await namedQuery<GrantStatus & { requestId: string }>(
    manager,
    'grant-statuses',
    `SELECT request_id AS "requestId", state, revoke_attempts AS "revokeAttempts",
            next_retry_at AS "nextRetryAt", revoked_at AS "revokedAt", last_error AS "lastError"
       FROM grants WHERE request_id = ANY($1::uuid[])`,
    [requestIds],
  );
  return new Map(rows.map(({ requestId, ...status }) => [requestId, status]));
}

/**
 * Takes the transaction-scoped advisory lock of an overlap key, then finds another ACTIVE grant, not yet
 * due, that holds the key; its id, or null.
 */
export async function lockOverlapHolder(
  manager: EntityManager,
  overlapKey: string,
  grantId: string,
): Promise<string | null> {
  await manager.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [OVERLAP_LOCK_CLASS, overlapKey]);
  const [holder] = (await manager.query(
    `SELECT id FROM grants
      WHERE overlap_key = $1 AND id <> $2 AND state = $3
        AND not_after > now() AND revoke_requested_at IS NULL
      ORDER BY not_after DESC LIMIT 1`,
    [overlapKey, grantId, GrantState.ACTIVE],
  )) as Array<{ id: string }>;
  return holder?.id ?? null;
}

/** Every grant not yet revoked, soonest first, and whether its revocation is due now. */
export async function unrevokedGrants(
  manager: EntityManager,
): Promise<Array<{ id: string; notAfter: Date; due: boolean }>> {
  return (await manager.query(
    `SELECT id, not_after AS "notAfter", revoke_requested_at IS NOT NULL OR not_after <= now() AS due
       FROM grants WHERE state <> $1 ORDER BY not_after`,
    [GrantState.REVOKED],
  )) as Array<{ id: string; notAfter: Date; due: boolean }>;
}

/** Grants newest first, optionally in one state; keyset-paginated by id (`cursor` is the last id seen). */
export async function listGrants(
  manager: EntityManager,
  query: { state: GrantState | null; cursor: string | null; limit: number },
): Promise<{ items: GrantListItem[]; nextCursor: string | null }> {
  const rows = (await manager.query(
    `SELECT g.id, g.request_id AS "requestId", g.connector, g.connector_type AS "connectorType",
            g.fingerprint, g.issued_at AS "issuedAt", g.not_after AS "notAfter", g.state,
            g.revoked_at AS "revokedAt", g.revoke_attempts AS "revokeAttempts", g.last_error AS "lastError",
            g.next_retry_at AS "nextRetryAt", u.username AS requester, r.entitlement_id AS "entitlementId"
       FROM grants g JOIN elevation_requests r ON r.id = g.request_id JOIN users u ON u.id = r.requester_id
      WHERE ($1::text IS NULL OR g.state = $1) AND ($2::uuid IS NULL OR g.id < $2)
      ORDER BY g.id DESC LIMIT $3`,
    [query.state, query.cursor, query.limit + 1],
  )) as GrantListItem[];
  const items = rows.slice(0, query.limit);
  return { items, nextCursor: rows.length > query.limit ? items[items.length - 1].id : null };
}

/**
 * The grant id reserved for the request's activation attempt (mint_attempts), `candidate` if there was none;
 * null when the request is not APPROVED. Committed by the caller before the mint is sent.
 */
export async function reserveGrantId(
  manager: EntityManager,
  requestId: string,
  candidate: string,
): Promise<string | null> {
  const [row] = (await manager.query(
    `WITH inserted AS (
       INSERT INTO mint_attempts (grant_id, request_id)
       SELECT $2, id FROM elevation_requests WHERE id = $1 AND state = 'APPROVED'
       ON CONFLICT (request_id) WHERE undo_external_ref IS NULL DO NOTHING RETURNING grant_id)
     SELECT grant_id AS "grantId" FROM inserted
     UNION ALL SELECT grant_id FROM mint_attempts WHERE request_id = $1 AND undo_external_ref IS NULL
     LIMIT 1`,
    [requestId, candidate],
  )) as Array<{ grantId: string }>;
  return row?.grantId ?? null;
}

/**
 * The grant id of a break-glass activation, committed before its mint is sent. Its request does not exist
 * until the activation commits (request_id null), so the row names what an undo needs.
 */
export async function reserveBreakGlassGrantId(
  manager: EntityManager,
  grantId: string,
  target: { connector: string; policyHash: string; overlapKey: string | null },
): Promise<void> {
  await manager.query(
    `INSERT INTO mint_attempts (grant_id, request_id, connector, policy_hash, overlap_key)
     VALUES ($1, NULL, $2, $3, $4)`,
    [grantId, target.connector, target.policyHash, target.overlapKey],
  );
}

/**
 * Row-locks the reservation of `grantId` for the request (null: a break-glass activation's), held until the
 * activation ends; false if gone.
 */
export async function claimReservation(
  manager: EntityManager,
  requestId: string | null,
  grantId: string,
): Promise<boolean> {
  const rows = (await manager.query(
    `SELECT 1 FROM mint_attempts
      WHERE grant_id = $2 AND request_id IS NOT DISTINCT FROM $1::uuid AND undo_external_ref IS NULL
      FOR UPDATE`,
    [requestId, grantId],
  )) as unknown[];
  return rows.length > 0;
}

/** Ends the reservation of one grant id; whether there was one. */
export async function deleteReservationOf(manager: EntityManager, grantId: string): Promise<boolean> {
  const [, deleted] = (await manager.query(
    `DELETE FROM mint_attempts WHERE grant_id = $1 AND undo_external_ref IS NULL`,
    [grantId],
  )) as [unknown[], number];
  return deleted > 0;
}

/** Ends the request's reservation (of `grantId` only, when given); whether there was one. */
export async function deleteReservation(
  manager: EntityManager,
  requestId: string,
  grantId?: string,
): Promise<boolean> {
  const [, deleted] = (await manager.query(
    `DELETE FROM mint_attempts
      WHERE request_id = $1 AND undo_external_ref IS NULL AND ($2::uuid IS NULL OR grant_id = $2)`,
    [requestId, grantId ?? null],
  )) as [unknown[], number];
  return deleted > 0;
}

/** An attempt whose grant did not commit and whose undo (a revoke) has yet to go through. */
export interface PendingUndo {
  grantId: string;
  requestId: string | null;
  externalRef: string;
  connector: string;
  policyHash: string;
  overlapKey: string | null;
  attempts: number;
  /** The undo went through once; this is its one re-send after the mint timeout. */
  resend: boolean;
}

/** Records (or counts again) an undo that failed; the sweep retries it. */
export async function recordFailedUndo(
  manager: EntityManager,
  undo: Omit<PendingUndo, 'attempts' | 'resend'>,
  lastError: string,
): Promise<void> {
  await manager.query(
    `INSERT INTO mint_attempts
       (grant_id, request_id, undo_external_ref, connector, policy_hash, overlap_key, undo_attempts, last_error)
     VALUES ($1, $2, $3, $4, $5, $6, 1, $7)
     ON CONFLICT (grant_id) DO UPDATE SET undo_external_ref = $3, connector = $4, policy_hash = $5,
       overlap_key = $6, undo_attempts = mint_attempts.undo_attempts + 1, last_error = $7`,
    [
      undo.grantId,
      undo.requestId,
      undo.externalRef,
      undo.connector,
      undo.policyHash,
      undo.overlapKey,
      lastError,
    ],
  );
}

/** Every undo still to retry, or whose one re-send is due, oldest first. */
export async function pendingUndos(manager: EntityManager): Promise<PendingUndo[]> {
  return (await manager.query(
    `SELECT grant_id AS "grantId", request_id AS "requestId", undo_external_ref AS "externalRef", connector,
            policy_hash AS "policyHash", overlap_key AS "overlapKey", undo_attempts AS attempts,
            resend_at IS NOT NULL AS resend
       FROM mint_attempts
      WHERE undo_external_ref IS NOT NULL AND (resend_at IS NULL OR resend_at <= now())
      ORDER BY reserved_at`,
  )) as PendingUndo[];
}

/**
 * After an undo went through: keeps it to be sent once more `afterMs` from now (a late mint may arrive after
 * its compensating revoke, which the receiver then answered 404); the sweep sends it, then forgets it.
 */
export async function scheduleResend(
  manager: EntityManager,
  undo: Omit<PendingUndo, 'attempts' | 'resend'>,
  afterMs: number,
): Promise<void> {
  await manager.query(
    `INSERT INTO mint_attempts
       (grant_id, request_id, undo_external_ref, connector, policy_hash, overlap_key, resend_at)
     VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7::float8 / 1000))
     ON CONFLICT (grant_id) DO UPDATE SET undo_external_ref = $3, resend_at = EXCLUDED.resend_at`,
    [
      undo.grantId,
      undo.requestId,
      undo.externalRef,
      undo.connector,
      undo.policyHash,
      undo.overlapKey,
      afterMs,
    ],
  );
}

/** Forgets an undo once the connector confirmed it (or another live grant holds its state). */
export async function deleteUndo(manager: EntityManager, grantId: string): Promise<void> {
  await manager.query(`DELETE FROM mint_attempts WHERE grant_id = $1 AND undo_external_ref IS NOT NULL`, [
    grantId,
  ]);
}

/** A reservation whose activation never concluded (its broker stopped mid-mint), with what undoing it needs. */
export interface AbandonedReservation {
  grantId: string;
  /** Null for a break-glass activation: its request never committed. */
  requestId: string | null;
  reservedAt: Date;
  requestState: string | null;
  policyHash: string;
  /** A break-glass reservation names its connector and overlap key; an activation's come from its request. */
  connector: string | null;
  overlapKey: string | null;
  entitlementId: string | null;
  subject: string | null;
  scope: Record<string, unknown> | null;
}

/**
 * Row-locks the reservations no live activation holds (SKIP LOCKED: an activation keeps its row locked
 * across the mint) whose grant never committed, and whose request is no longer APPROVED or which are older
 * than `olderThanMs`: their broker stopped mid-mint.
 */
export async function lockAbandonedReservations(
  manager: EntityManager,
  olderThanMs: number,
): Promise<AbandonedReservation[]> {
  return (await manager.query(
    `SELECT m.grant_id AS "grantId", m.request_id AS "requestId", m.reserved_at AS "reservedAt",
            r.state AS "requestState", COALESCE(r.policy_hash, m.policy_hash) AS "policyHash",
            m.connector, m.overlap_key AS "overlapKey", r.entitlement_id AS "entitlementId",
            u.username AS subject, r.scope
       FROM mint_attempts m
       LEFT JOIN elevation_requests r ON r.id = m.request_id
       LEFT JOIN users u ON u.id = r.requester_id
      WHERE m.undo_external_ref IS NULL
        AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.id = m.grant_id)
        AND (r.state <> 'APPROVED' OR m.reserved_at < now() - make_interval(secs => $1::float8 / 1000))
      ORDER BY m.reserved_at
      FOR UPDATE OF m SKIP LOCKED`,
    [olderThanMs],
  )) as AbandonedReservation[];
}

/**
 * Whether a grant of the request, or of a request extending it (revoked with it), is not yet confirmed
 * revoked: what an early revoke's answer (202 or 200) must reflect.
 */
export async function revocationPending(manager: EntityManager, requestId: string): Promise<boolean> {
  const [row] = (await manager.query(
    `SELECT EXISTS (
       SELECT 1 FROM grants g JOIN elevation_requests r ON r.id = g.request_id
        WHERE (r.id = $1 OR r.extends_request_id = $1) AND g.state <> $2) AS pending`,
    [requestId, GrantState.REVOKED],
  )) as Array<{ pending: boolean }>;
  return row.pending;
}
