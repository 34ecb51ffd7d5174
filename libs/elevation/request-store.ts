import type { EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { ApprovalEntity, ElevationRequestEntity, type RequesterWorkload } from '../db/index.js';
import { namedQuery } from '../db/named-query.js';
import { UserStatus, type Actor } from '../domain/actor.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import type { Entitlement, Policy } from '../domain/policy.js';
import { canSee, requestNotFound, type NewRequest, type Vote } from '../domain/request-rules.js';
import {
  OPEN_STATES,
  RequestState,
  WAITING_STATES,
  type Decision,
  type Transition,
} from '../domain/request-state.js';
import type { StoredRequest } from '../webauthn/step-up-binding.js';
import type { StepUpEvidence } from '../webauthn/evidence.js';
import { noteChanged } from './after-commit.js';

// Locking and SQL of elevation requests: plain functions over the caller's transaction (as anti-fatigue.ts
// does). Lock order everywhere: user → request (older id first) → grants → audit chain head.

/** The code a lost compare-and-set reports, by the state the loser expected. */
const CONFLICT_CODE: Partial<Record<RequestState, ErrorCode>> = {
  [RequestState.PENDING]: ErrorCode.REQUEST_NOT_PENDING,
  [RequestState.APPROVED]: ErrorCode.REQUEST_NOT_APPROVED,
  [RequestState.ACTIVE]: ErrorCode.REQUEST_NOT_ACTIVE,
};

/** What a command may set besides a transition's own fields. */
type RequestPatch = Partial<Pick<ElevationRequestEntity, 'activatedAt' | 'endsAt'>>;

/** `UPDATE … WHERE id = $1 AND state = $expected`; exactly one concurrent caller wins (DESIGN §4.2). */
export async function compareAndSet(
  manager: EntityManager,
  request: ElevationRequestEntity,
  next: Transition,
  patch: RequestPatch = {},
): Promise<void> {
  const expected = request.state as RequestState;
  const changes = { ...next.changes, ...patch, state: next.state };
  const updated = await updateIfState(manager, request.id, expected, changes);
  if (!updated) {
    throw new DomainError(
      CONFLICT_CODE[expected] ?? ErrorCode.REQUEST_FINISHED,
      'The request changed meanwhile',
    );
  }
  Object.assign(request, changes);
  noteChanged(manager, request.id);
}

/**
 * `UPDATE elevation_requests SET … WHERE id = $1 AND state = $2` as a pg named statement, one per set of
 * columns (a handful of transitions): TypeORM's query builder builds it anew on every call, a large share of
 * the worker's CPU per revocation. Undefined fields are skipped, as the query builder does; whether a row
 * changed.
 */
async function updateIfState(
  manager: EntityManager,
  id: string,
  expected: RequestState,
  changes: Partial<ElevationRequestEntity>,
): Promise<boolean> {
  const columns = requestColumnsByProperty(manager);
  const fields = Object.keys(changes)
    .filter((property) => changes[property as keyof ElevationRequestEntity] !== undefined)
    .sort();
  const values: unknown[] = [id, expected];
  const assignments = fields.map((property) => {
    const column = columns.get(property);
    if (!column) throw new Error(`elevation_requests has no column for ${property}`);
    const value = changes[property as keyof ElevationRequestEntity];
    // jsonb as its JSON text: pg would send an array as a PostgreSQL array.
    values.push(column.json && value !== null ? JSON.stringify(value) : value);
    return `${column.databaseName} = $${values.length}`;
  });
  const sql = `UPDATE elevation_requests SET ${assignments.join(', ')} WHERE id = $1 AND state = $2 RETURNING 1`;
  const rows = await namedQuery(manager, casStatementName(fields.join(',')), sql, values);
  return rows.length === 1;
}

// PostgreSQL cuts statement names at 63 bytes: a short name per set of columns, the same on every connection.
const casStatementNames = new Map<string, string>();

function casStatementName(fields: string): string {
  let name = casStatementNames.get(fields);
  if (!name) casStatementNames.set(fields, (name = `request-cas-${casStatementNames.size + 1}`));
  return name;
}

let columnsByProperty: Map<string, { databaseName: string; json: boolean }> | undefined;

function requestColumnsByProperty(manager: EntityManager) {
  columnsByProperty ??= new Map(
    manager.connection
      .getMetadata(ElevationRequestEntity)
      .columns.map((column) => [
        column.propertyName,
        { databaseName: column.databaseName, json: column.type === 'jsonb' || column.type === 'json' },
      ]),
  );
  return columnsByProperty;
}

// ---------------------------------------------------------------------------------------------------
// Locks

/** Serialises a user's own filings, so limits on open requests hold under concurrency. */
export async function lockUser(manager: EntityManager, userId: string): Promise<void> {
  const [user] = (await manager.query(`SELECT status FROM users WHERE id = $1 FOR UPDATE`, [
    userId,
  ])) as Array<{
    status: string;
  }>;
  if (user?.status !== UserStatus.ACTIVE) {
    throw new DomainError(ErrorCode.USER_SUSPENDED, 'This account is suspended');
  }
}

/** Loads and row-locks a request (FOR UPDATE); null when there is none. */
export function lockRequest(manager: EntityManager, id: string): Promise<ElevationRequestEntity | null> {
  return selectRequest(manager, id, 'FOR UPDATE');
}

/** Loads a request without a lock (reads outside a command); null when there is none. */
export function findRequest(manager: EntityManager, id: string): Promise<ElevationRequestEntity | null> {
  return selectRequest(manager, id, '');
}

/** Loads a request under a share lock (an extension's original must not change meanwhile). */
export function shareLockRequest(manager: EntityManager, id: string): Promise<ElevationRequestEntity | null> {
  return selectRequest(manager, id, 'FOR SHARE');
}

// Plain SQL, a named statement per lock mode (a revocation locks its request twice, an approval reads it twice): TypeORM's find
// builds its query anew on every call. Every mapped column, named as the entity's property.
let columns: string | undefined;

/** Every mapped column of elevation_requests, named as the entity's property, for plain SELECTs. */
export function requestColumns(manager: EntityManager): string {
  columns ??= manager.connection
    .getMetadata(ElevationRequestEntity)
    .columns.map((column) => `${column.databaseName} AS "${column.propertyName}"`)
    .join(', ');
  return columns;
}

const STATEMENT_NAMES = {
  'FOR UPDATE': 'request-lock',
  'FOR SHARE': 'request-share-lock',
  '': 'request-read',
};

async function selectRequest(manager: EntityManager, id: string, lock: keyof typeof STATEMENT_NAMES) {
  const name = STATEMENT_NAMES[lock];
  const sql = `SELECT ${requestColumns(manager)} FROM elevation_requests WHERE id = $1 ${lock}`;
  const [row] = await namedQuery<ElevationRequestEntity>(manager, name, sql, [id]);
  return row ? Object.assign(new ElevationRequestEntity(), row) : null;
}

/** Loads and row-locks a request, so decisions on one request serialise; 404 when not visible. */
export async function lockVisible(
  manager: EntityManager,
  actor: Actor,
  requestId: string,
  policy: Policy,
): Promise<ElevationRequestEntity> {
  const request = await lockRequest(manager, requestId);
  if (!request || !canSee(actor, request, policy)) throw requestNotFound(requestId);
  return request;
}

/** Row-locks, oldest first, the open requests of a requester or the open extensions of a request. */
export async function lockOpenRequests(
  manager: EntityManager,
  of: { requesterId: string } | { extendsRequestId: string },
): Promise<ElevationRequestEntity[]> {
  const [column, id] =
    'requesterId' in of ? ['requester_id', of.requesterId] : ['extends_request_id', of.extendsRequestId];
  const rows = (await manager.query(
    `SELECT id FROM elevation_requests WHERE ${column} = $1 AND state = ANY($2) ORDER BY id FOR UPDATE`,
    [id, OPEN_STATES],
  )) as Array<{ id: string }>;
  const requests: ElevationRequestEntity[] = [];
  for (const row of rows)
    requests.push(await manager.findOneByOrFail(ElevationRequestEntity, { id: row.id }));
  return requests;
}

// ---------------------------------------------------------------------------------------------------
// Reads inside a command's transaction

/** now and now + duration on PostgreSQL's clock; notAfter in whole seconds (JWT `exp` has no fraction). */
export async function windowFrom(
  manager: EntityManager,
  durationSeconds: number,
): Promise<{ now: Date; notAfter: Date }> {
  const [{ now, not_after: notAfter }] = (await manager.query(
    `SELECT t AS now, date_trunc('second', t) + make_interval(secs => $1) AS not_after
       FROM clock_timestamp() AS t`,
    [durationSeconds],
  )) as Array<{ now: Date; not_after: Date }>;
  return { now, notAfter };
}

/** Refuses when the requester holds or awaits the entitlement already. */
export async function assertNoOpenRequest(
  manager: EntityManager,
  requesterId: string,
  entitlementId: string,
): Promise<void> {
  const [{ open }] = (await manager.query(
    `SELECT EXISTS (SELECT 1 FROM elevation_requests
                     WHERE requester_id = $1 AND entitlement_id = $2 AND state = ANY($3)) AS open`,
    [requesterId, entitlementId, OPEN_STATES],
  )) as Array<{ open: boolean }>;
  if (open)
    throw new DomainError(ErrorCode.OPEN_REQUEST_EXISTS, `You already hold or await "${entitlementId}"`);
}

/**
 * The decisions recorded on a request, and the voter's own about to be, as quorum counting reads them
 * (with when each voter's account was recovered, for the cool-down).
 */
export async function votesOn(
  manager: EntityManager,
  requestId: string,
  mine: Omit<Vote, 'active' | 'recoveredAt'>,
): Promise<{ recorded: Vote[]; mine: Vote }> {
  const rows = (await manager.query(
    `SELECT a.approver_id AS "approverId", a.decision, u.username, u.status = $2 AS active, a.at
       FROM approvals a JOIN users u ON u.id = a.approver_id WHERE a.request_id = $1`,
    [requestId, UserStatus.ACTIVE],
  )) as Array<Omit<Vote, 'recoveredAt'>>;
  const recoveries = (await manager.query(
    `SELECT user_id AS "userId", used_at AS at FROM enrollment_invites
      WHERE user_id = ANY ($1::uuid[]) AND recovery AND used_at IS NOT NULL`,
    [[mine.approverId, ...rows.map((row) => row.approverId)]],
  )) as Array<{ userId: string; at: Date }>;
  const recoveredAt = (userId: string) => recoveries.filter((r) => r.userId === userId).map((r) => r.at);
  return {
    recorded: rows.map((row) => ({ ...row, recoveredAt: recoveredAt(row.approverId) })),
    mine: { ...mine, active: true, recoveredAt: recoveredAt(mine.approverId) },
  };
}

/** The waiting requests with their deadlines, for the sweeper. */
export async function waitingRequests(manager: EntityManager): Promise<
  Array<{
    id: string;
    state: string;
    pendingUntil: Date | null;
    activateBy: Date | null;
    notBefore: Date | null;
    awaitsStart: boolean;
  }>
> {
  return (await manager.query(
    `SELECT r.id, r.state, r.pending_until AS "pendingUntil", r.activate_by AS "activateBy",
            r.not_before AS "notBefore", r.window_opened_at IS NULL AS "awaitsStart"
       FROM elevation_requests r WHERE r.state = ANY($1)`,
    [WAITING_STATES],
  )) as Awaited<ReturnType<typeof waitingRequests>>;
}

// ---------------------------------------------------------------------------------------------------
// Writes besides the state

/** A new request's row, one field per column: the fields its step-ups commit to, and how it starts. */
export interface RequestRow extends StoredRequest {
  /** Who a workload's token proved it was (issue 21); null for a person. */
  requesterWorkload: RequesterWorkload | null;
  approvalsRequired: number;
  state: RequestState;
  createdAt: Date;
  pendingUntil: Date | null;
  decidedAt: Date | null;
  activateBy: Date | null;
  activatedAt: Date | null;
  endsAt: Date | null;
  reviewDueAt: Date | null;
}

const REQUEST_COLUMNS: ReadonlyArray<[keyof RequestRow, string]> = [
  ['id', 'id'],
  ['requesterId', 'requester_id'],
  ['entitlementId', 'entitlement_id'],
  ['policyHash', 'policy_hash'],
  ['scope', 'scope'],
  ['durationSeconds', 'duration_seconds'],
  ['justification', 'justification'],
  ['ticket', 'ticket'],
  ['notBefore', 'not_before'],
  ['breakGlass', 'break_glass'],
  ['extendsRequestId', 'extends_request_id'],
  ['sshPublicKey', 'ssh_public_key'],
  ['requesterWorkload', 'requester_workload'],
  ['approvalsRequired', 'approvals_required'],
  ['state', 'state'],
  ['createdAt', 'created_at'],
  ['pendingUntil', 'pending_until'],
  ['decidedAt', 'decided_at'],
  ['activateBy', 'activate_by'],
  ['activatedAt', 'activated_at'],
  ['endsAt', 'ends_at'],
  ['reviewDueAt', 'review_due_at'],
];

/** The row of a new request: what was asked, under which policy, and how it starts. */
export function requestRow(
  actor: Actor,
  entitlement: Entitlement,
  policyHash: string,
  input: NewRequest,
  start: Pick<RequestRow, 'state' | 'createdAt' | 'breakGlass' | 'approvalsRequired'> &
    Partial<
      Pick<RequestRow, 'pendingUntil' | 'decidedAt' | 'activateBy' | 'activatedAt' | 'endsAt' | 'reviewDueAt'>
    >,
): RequestRow {
  return {
    id: uuidv7(),
    requesterId: actor.id,
    entitlementId: entitlement.id,
    policyHash,
    scope: entitlement.scope,
    durationSeconds: input.durationSeconds,
    justification: input.justification,
    ticket: input.ticket ?? null,
    notBefore: input.notBefore ?? null,
    extendsRequestId: input.extendsRequestId ?? null,
    sshPublicKey: input.sshPublicKey ?? null,
    requesterWorkload: actor.workload
      ? {
          id: actor.workload.id,
          title: actor.displayName,
          ownerGroup: actor.workload.ownerGroup,
          issuer: actor.workload.issuer,
          subject: actor.workload.subject,
          jti: actor.workload.jti,
        }
      : null,
    pendingUntil: null,
    decidedAt: null,
    activateBy: null,
    activatedAt: null,
    endsAt: null,
    reviewDueAt: null,
    ...start,
  };
}

/** Inserts a new request's row and returns it as stored. */
export async function insertRequestRow(
  manager: EntityManager,
  row: RequestRow,
): Promise<ElevationRequestEntity> {
  const columns = REQUEST_COLUMNS.map(([, column]) => column).join(', ');
  const placeholders = REQUEST_COLUMNS.map((_, index) => `$${index + 1}`).join(', ');
  await manager.query(
    `INSERT INTO elevation_requests (${columns}) VALUES (${placeholders})`,
    REQUEST_COLUMNS.map(([field]) => row[field]),
  );
  noteChanged(manager, row.id);
  return manager.findOneByOrFail(ElevationRequestEntity, { id: row.id });
}

/** Records one approver's decision with the step-up evidence that authorised it. */
export async function insertApproval(
  manager: EntityManager,
  vote: { requestId: string; approverId: string; decision: Decision; comment: string | null; at: Date },
  evidence: StepUpEvidence,
): Promise<void> {
  await manager.insert(ApprovalEntity, {
    id: uuidv7(),
    ...vote,
    credentialId: evidence.credentialId,
    authenticatorData: evidence.authenticatorData,
    clientDataJson: evidence.clientDataJson,
    signature: evidence.signature,
    nonce: evidence.nonce,
    subjectDigest: evidence.subjectDigest,
  });
  noteChanged(manager, vote.requestId);
}

/** Marks a break-glass request reviewed, once; returns when. */
export async function markReviewed(
  manager: EntityManager,
  requestId: string,
  reviewerId: string,
  comment: string,
): Promise<Date> {
  const [[reviewed]] = (await manager.query(
    `UPDATE elevation_requests SET reviewed_at = now(), reviewed_by = $2, review_comment = $3
      WHERE id = $1 AND reviewed_at IS NULL RETURNING reviewed_at AS "reviewedAt"`,
    [requestId, reviewerId, comment],
  )) as [Array<{ reviewedAt: Date }>, number];
  noteChanged(manager, requestId);
  return reviewed.reviewedAt;
}

/** Records that the activation window of a scheduled request opened (once per request). */
export async function markWindowOpened(manager: EntityManager, requestId: string, at: Date): Promise<void> {
  await manager.update(ElevationRequestEntity, { id: requestId }, { windowOpenedAt: at });
  noteChanged(manager, requestId);
}

/** Marks every break-glass review that became overdue (once each) and returns them. */
export async function markOverdueReviews(
  manager: EntityManager,
): Promise<Array<{ id: string; requesterId: string; entitlementId: string; reviewDueAt: Date }>> {
  const [overdue] = (await manager.query(
    `UPDATE elevation_requests SET review_overdue_at = now()
      WHERE break_glass AND reviewed_at IS NULL AND review_overdue_at IS NULL AND review_due_at < now()
      RETURNING id, requester_id AS "requesterId", entitlement_id AS "entitlementId", review_due_at AS "reviewDueAt"`,
  )) as [Array<{ id: string; requesterId: string; entitlementId: string; reviewDueAt: Date }>, number];
  return overdue;
}
