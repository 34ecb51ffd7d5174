import { Injectable } from '@nestjs/common';
import { DataSource, type SelectQueryBuilder } from 'typeorm';
import { ElevationRequestEntity } from '../db/index.js';
import { namedQuery } from '../db/named-query.js';
import { isAdmin, seesEverything, type Actor } from '../domain/actor.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { findEntitlement, isApprover, type Entitlement, type Policy } from '../domain/policy.js';
import { approvableBy, canSee, checkReview, requestNotFound } from '../domain/request-rules.js';
import { RequestState } from '../domain/request-state.js';
import { requestSubject, subjectDigest } from '../webauthn/step-up-binding.js';
import { PolicyService } from '../policy/policy.service.js';
import { grantStatuses, revocationPending, type GrantStatus } from './grant-store.js';
import { findRequest, requestColumns } from './request-store.js';

export interface RequestListQuery {
  limit: number;
  cursor?: string | null;
  state?: RequestState | null;
  /** Only requests for this entitlement (list only). */
  entitlementId?: string | null;
  /** Only requests filed by this username (list only). */
  requester?: string | null;
}

/** What a request view shows besides the row: requesters' usernames and grants, by id. */
export interface RequestViewFacts {
  usernames: ReadonlyMap<string, string>;
  grants: ReadonlyMap<string, GrantStatus>;
}

/** One approver's decision as a request's page shows it (the deny reason is its comment). */
export interface RequestDecision {
  approver: string;
  decision: 'approve' | 'deny';
  comment: string | null;
  at: string;
}

/** A page of requests, newest first; `nextCursor` is the last id when there are more. */
export interface RequestPage {
  items: ElevationRequestEntity[];
  nextCursor: string | null;
}

const NO_AUTHENTICATOR_REQUIREMENT: Entitlement['authenticator'] = { deviceBound: false, aaguids: null };

/** The read side of elevation requests: what an actor may see, decide on or review. Changes no state. */
@Injectable()
export class RequestQueries {
  constructor(
    private readonly dataSource: DataSource,
    private readonly policies: PolicyService,
  ) {}

  /** One request, if the actor may see it under the policy in force, else 404. */
  async get(actor: Actor, requestId: string): Promise<ElevationRequestEntity> {
    return this.visible(actor, requestId, (await this.policies.inForce()).policy);
  }

  /** Records that an approver opened a request (first time only), for the rubber-stamp signal. */
  async recordView(actor: Actor, request: ElevationRequestEntity): Promise<void> {
    if (request.requesterId === actor.id || request.state !== RequestState.PENDING) return;
    await this.dataSource.query(
      `INSERT INTO request_views (request_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
      [request.id, actor.id],
    );
  }

  /**
   * Requests the actor may see, newest first, keyset-paginated by id (UUIDv7 ids sort by time): one named
   * statement for every actor and filter, planned once per connection.
   */
  async list(actor: Actor, query: RequestListQuery): Promise<RequestPage> {
    const { policy } = await this.policies.inForce();
    const manager = this.dataSource.manager;
    const rows = await namedQuery<ElevationRequestEntity>(
      manager,
      'request-list',
      `SELECT ${requestColumns(manager)} FROM elevation_requests
        WHERE ($1::boolean OR requester_id = $2::uuid OR entitlement_id = ANY($3::text[]))
          AND ($4::text IS NULL OR state = $4::text) AND ($5::uuid IS NULL OR id < $5::uuid)
          AND ($7::text IS NULL OR entitlement_id = $7::text)
          AND ($8::text IS NULL OR requester_id = (SELECT id FROM users WHERE username = $8::text))
        ORDER BY id DESC LIMIT $6`,
      [
        seesEverything(actor),
        actor.id,
        approvableBy(policy, actor),
        query.state ?? null,
        query.cursor ?? null,
        query.limit + 1,
        query.entitlementId ?? null,
        query.requester ?? null,
      ],
    );
    const items = rows.slice(0, query.limit).map((row) => Object.assign(new ElevationRequestEntity(), row));
    return { items, nextCursor: rows.length > query.limit ? items[items.length - 1].id : null };
  }

  /** Pending requests the actor may decide now: a current approver, not the requester, not yet decided. */
  async inbox(actor: Actor, query: RequestListQuery): Promise<RequestPage> {
    const { policy } = await this.policies.inForce();
    const builder = this.dataSource
      .getRepository(ElevationRequestEntity)
      .createQueryBuilder('request')
      .where('request.state = :pending AND request.pending_until > now()', { pending: RequestState.PENDING })
      .andWhere('request.entitlement_id = ANY(:approvable)', { approvable: approvableBy(policy, actor) })
      .andWhere('request.requester_id <> :actorId', { actorId: actor.id })
      .andWhere(
        'NOT EXISTS (SELECT 1 FROM approvals a WHERE a.request_id = request.id AND a.approver_id = :actorId)',
        { actorId: actor.id },
      )
      .orderBy('request.id', 'DESC')
      .limit(query.limit + 1);
    return page(builder, query);
  }

  /** Break-glass requests awaiting post-review that the actor may review, most overdue first. */
  async reviewQueue(actor: Actor): Promise<Array<ElevationRequestEntity & { overdue: boolean }>> {
    const { policy } = await this.policies.inForce();
    const rows = (await this.dataSource.query(
      `SELECT id, review_due_at < now() AS overdue FROM elevation_requests
        WHERE break_glass AND reviewed_at IS NULL ORDER BY review_due_at, id`,
    )) as Array<{ id: string; overdue: boolean }>;
    if (rows.length === 0) return [];
    const requests = await this.dataSource
      .getRepository(ElevationRequestEntity)
      .createQueryBuilder('request')
      .where('request.id = ANY(:ids)', { ids: rows.map((row) => row.id) })
      .getMany();
    const byId = new Map(requests.map((request) => [request.id, request]));
    return rows
      .map((row) => ({ request: byId.get(row.id)!, overdue: row.overdue }))
      .filter(({ request }) => request && checkReview(actor, request, policy) === null)
      .map(({ request, overdue }) => Object.assign(request, { overdue }));
  }

  /**
   * What a step-up on a request commits to: the digest of its stored immutable fields, and the entitlement's
   * authenticator requirement (from the policy in force, else the version the request was filed under).
   */
  async stepUpBinding(
    actor: Actor,
    requestId: string,
    action: 'approve' | 'deny' | 'activate' | 'revoke',
  ): Promise<{ subjectDigest: string; authenticator: Entitlement['authenticator'] }> {
    const { policy } = await this.policies.inForce();
    const request = await this.visible(actor, requestId, policy);
    const entitlement =
      findEntitlement(policy, request.entitlementId) ??
      findEntitlement(await this.policies.byHash(request.policyHash), request.entitlementId);
    // Refuse up front what the decision would refuse anyway, before anyone touches their passkey.
    if (action === 'approve' || action === 'deny') {
      if (request.requesterId === actor.id) {
        throw new DomainError(ErrorCode.SELF_APPROVAL, 'You cannot decide on your own request');
      }
      if (!entitlement || !isApprover(policy, entitlement, actor.username)) {
        throw new DomainError(
          ErrorCode.NOT_AN_APPROVER,
          `You are not an approver of "${request.entitlementId}"`,
        );
      }
    }
    if (action === 'activate' && request.requesterId !== actor.id) {
      throw new DomainError(ErrorCode.NOT_REQUESTER, 'Only the requester can activate a request');
    }
    // As RequestsService.revoke decides (request-state.ts): an auditor or reviewer sees the request, may not end it.
    if (
      action === 'revoke' &&
      request.requesterId !== actor.id &&
      !isAdmin(actor) &&
      !(entitlement && isApprover(policy, entitlement, actor.username))
    ) {
      throw new DomainError(
        ErrorCode.FORBIDDEN,
        'Only the requester, an approver or an admin can revoke this grant.',
      );
    }
    return {
      subjectDigest: subjectDigest(requestSubject(request)),
      authenticator: entitlement?.authenticator ?? NO_AUTHENTICATOR_REQUIREMENT,
    };
  }

  /** The break-glass entitlement's authenticator requirement, for the step-up that creates it. */
  async breakGlassRequirement(entitlementId: string): Promise<Entitlement['authenticator']> {
    const { policy } = await this.policies.inForce();
    return findEntitlement(policy, entitlementId)?.authenticator ?? NO_AUTHENTICATOR_REQUIREMENT;
  }

  /** The usernames and grants that views of these requests show (two queries, whatever their number). */
  async viewFacts(requests: readonly ElevationRequestEntity[]): Promise<RequestViewFacts> {
    const [usernames, grants] = await Promise.all([
      this.usernames(requests.map((request) => request.requesterId)),
      grantStatuses(
        this.dataSource.manager,
        requests.map((request) => request.id),
      ),
    ]);
    return { usernames, grants };
  }

  /** Whether the request's grant, or an extension's revoked with it, still waits for the connector. */
  revocationPending(requestId: string): Promise<boolean> {
    return revocationPending(this.dataSource.manager, requestId);
  }

  /** The approvers' decisions on one request, oldest first: who, approve or deny, the comment or reason. */
  async decisions(requestId: string): Promise<RequestDecision[]> {
    const rows = (await this.dataSource.query(
      `SELECT u.username AS approver, a.decision, a.comment, a.at FROM approvals a
         JOIN users u ON u.id = a.approver_id WHERE a.request_id = $1 ORDER BY a.at, a.id`,
      [requestId],
    )) as Array<Omit<RequestDecision, 'at'> & { at: Date }>;
    return rows.map((row) => ({ ...row, at: row.at.toISOString() }));
  }

  /** Usernames by user id, for shaping responses. */
  async usernames(ids: string[]): Promise<Map<string, string>> {
    if (ids.length === 0) return new Map();
    const users = await namedQuery<{ id: string; username: string }>(
      this.dataSource.manager,
      'usernames-by-id',
      `SELECT id, username FROM users WHERE id = ANY($1::uuid[])`,
      [[...new Set(ids)]],
    );
    return new Map(users.map((user) => [user.id, user.username]));
  }

  /** The request if the actor may see it under `policy`, else 404 (no lock). */
  private async visible(actor: Actor, requestId: string, policy: Policy): Promise<ElevationRequestEntity> {
    const request = await findRequest(this.dataSource.manager, requestId);
    if (!request || !canSee(actor, request, policy)) throw requestNotFound(requestId);
    return request;
  }
}

/** Runs a keyset page query (`limit + 1` rows fetched, to know whether there are more). */
async function page(
  builder: SelectQueryBuilder<ElevationRequestEntity>,
  query: RequestListQuery,
): Promise<RequestPage> {
  if (query.cursor) builder.andWhere('request.id < :cursor', { cursor: query.cursor });
  const rows = await builder.getMany();
  const items = rows.slice(0, query.limit);
  return { items, nextCursor: rows.length > query.limit ? items[items.length - 1].id : null };
}
