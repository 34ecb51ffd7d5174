import type { EntityManager } from 'typeorm';
import { GrantEntity } from '../db/index.js';
import { GrantState } from '../domain/grant-state.js';

// Locking and SQL of grants: plain functions over the caller's transaction, called by GrantsService only
// (the grants' one writer). Lock order as everywhere: request → grant → audit chain head.

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
  requester: string;
  entitlementId: string;
}

/** What a failed revocation attempt changes on its grant. */
export type FailedAttempt = Pick<GrantEntity, 'revokeAttempts' | 'lastError'> & { state?: GrantState };

/** Loads a grant without a lock; null when there is none. */
export function findGrant(manager: EntityManager, id: string): Promise<GrantEntity | null> {
  return manager.findOneBy(GrantEntity, { id });
}

/** Loads and row-locks a grant (FOR UPDATE); null when there is none. */
export function lockGrant(manager: EntityManager, id: string): Promise<GrantEntity | null> {
  return manager.findOne(GrantEntity, { where: { id }, lock: { mode: 'pessimistic_write' } });
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

/** Marks the request's unrevoked grants due now (an early revoke); returns their ids. */
export async function markRevokeRequested(
  manager: EntityManager,
  requestId: string,
  reason: string,
): Promise<string[]> {
  const [grants] = (await manager.query(
    `UPDATE grants SET revoke_requested_at = now(), revoke_reason = $2
      WHERE request_id = $1 AND state <> $3 AND revoke_requested_at IS NULL RETURNING id`,
    [requestId, reason, GrantState.REVOKED],
  )) as [Array<{ id: string }>, number];
  return grants.map((grant) => grant.id);
}

/** Marks a grant REVOKED at `now`. */
export async function markRevoked(manager: EntityManager, id: string, now: Date): Promise<void> {
  await manager.update(GrantEntity, { id }, { state: GrantState.REVOKED, revokedAt: now });
}

/** Records a failed revocation attempt (and REVOKE_FAILED after the last one). */
export async function recordAttempt(
  manager: EntityManager,
  id: string,
  attempt: FailedAttempt,
): Promise<void> {
  await manager.update(GrantEntity, { id }, attempt);
}

/** How long until `notAfter` by PostgreSQL's clock, in milliseconds (negative once passed). */
export async function remainingMs(manager: EntityManager, notAfter: Date): Promise<number> {
  const [{ remaining_ms: remaining }] = (await manager.query(
    `SELECT (extract(epoch FROM ($1::timestamptz - now())) * 1000)::float8 AS remaining_ms`,
    [notAfter],
  )) as Array<{ remaining_ms: number }>;
  return remaining;
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
            u.username AS requester, r.entitlement_id AS "entitlementId"
       FROM grants g JOIN elevation_requests r ON r.id = g.request_id JOIN users u ON u.id = r.requester_id
      WHERE ($1::text IS NULL OR g.state = $1) AND ($2::uuid IS NULL OR g.id < $2)
      ORDER BY g.id DESC LIMIT $3`,
    [query.state, query.cursor, query.limit + 1],
  )) as GrantListItem[];
  const items = rows.slice(0, query.limit);
  return { items, nextCursor: rows.length > query.limit ? items[items.length - 1].id : null };
}
