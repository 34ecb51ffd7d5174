import { Body, Controller, Get, Header, HttpCode, Param, Post, Query } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { USERNAME_PATTERN } from '../../../libs/domain/policy.js';
import type { Actor } from '../../../libs/elevation/actor.js';
import { InvitesService } from '../../../libs/identity/invites.service.js';
import { SessionsService } from '../../../libs/identity/sessions.service.js';
import { StepUpService } from '../../../libs/identity/step-up.service.js';
import { CurrentActor } from '../auth/current-actor.decorator.js';
import { paramsDigest } from '../auth/step-up-params.js';
import { EmptyBodyPipe, UuidPipe } from '../errors/validation.js';
import { PolicyService } from '../../../libs/elevation/policy.service.js';
import { UsersService } from '../../../libs/identity/users.service.js';
import {
  ApproveInviteDto,
  CreateInviteDto,
  ListInvitesQuery,
  ListGrantsQuery,
  ListUsersQuery,
  PolicyReloadDto,
  SetUserStatusDto,
} from './admin.dto.js';

function requireAdmin(actor: Actor): void {
  if (!actor.roles.includes('admin')) throw new DomainError(ErrorCode.FORBIDDEN, 'Admins only');
}

/** People administration (admin role): invites, and ending a user's sessions. */
@Controller('api/admin')
export class AdminController {
  constructor(
    private readonly invites: InvitesService,
    private readonly sessions: SessionsService,
    private readonly stepUp: StepUpService,
    private readonly accounts: UsersService,
    private readonly policies: PolicyService,
    private readonly dataSource: DataSource,
  ) {}

  /**
   * `{ username, displayName?, roles, stepUp }` with an `invite.create` step-up whose subject is the username.
   * A recovery of an admin or approver answers `state: "pending-approval"`: its link works once a second
   * admin approves it (POST invites/:id/approve).
   */
  @Post('invites')
  @HttpCode(201)
  @Header('Cache-Control', 'no-store')
  async createInvite(@CurrentActor() actor: Actor, @Body() body: CreateInviteDto) {
    requireAdmin(actor);
    const { stepUp, ...params } = body;
    const evidence = await this.stepUp.verify(actor, stepUp as never, {
      action: 'invite.create',
      subjectId: body.username,
      subjectDigest: paramsDigest(params),
    });
    const invite = await this.invites.create(
      actor,
      { username: body.username, displayName: body.displayName ?? null, roles: body.roles },
      evidence,
    );
    return {
      token: invite.token,
      url: invite.url,
      expiresAt: invite.expiresAt.toISOString(),
      ...(invite.pendingApproval ? { inviteId: invite.inviteId, state: 'pending-approval' } : {}),
    };
  }

  /** Recovery invites waiting for a second admin (`?state=pending-approval`, the only state listed). */
  @Get('invites')
  async listInvites(@CurrentActor() actor: Actor, @Query() _query: ListInvitesQuery) {
    requireAdmin(actor);
    return { items: await this.invites.pending(), nextCursor: null };
  }

  /**
   * A second admin approves a pending recovery invite with an `invite.approve` step-up (subject the invite
   * id, params `{}`); the creator, or the user being recovered, gets 403 INVITE_SELF_APPROVAL.
   */
  @Post('invites/:id/approve')
  @HttpCode(200)
  async approveInvite(
    @CurrentActor() actor: Actor,
    @Param('id', UuidPipe) id: string,
    @Body() body: ApproveInviteDto,
  ) {
    requireAdmin(actor);
    const evidence = await this.stepUp.verify(actor, body.stepUp as never, {
      action: 'invite.approve',
      subjectId: id,
      subjectDigest: paramsDigest({}),
    });
    const approved = await this.invites.approve(actor, id, evidence);
    return { ...approved, expiresAt: approved.expiresAt.toISOString() };
  }

  /** Users by username, keyset-paginated (`?limit=&cursor=<last username>`). */
  @Get('users')
  async users(@CurrentActor() actor: Actor, @Query() query: ListUsersQuery) {
    requireAdmin(actor);
    const limit = query.limit ?? 100;
    const rows = (await this.dataSource.query(
      `SELECT u.id, u.username, u.display_name AS "displayName", u.roles, u.status,
              (SELECT count(*)::int FROM authenticators a
                WHERE a.user_id = u.id AND a.removed_at IS NULL AND a.disabled_at IS NULL) AS passkeys,
              (SELECT count(*)::int FROM sessions s WHERE s.user_id = u.id AND s.ended_at IS NULL
                 AND s.expires_at > now()) AS sessions
         FROM users u WHERE ($1::text IS NULL OR u.username > $1) ORDER BY u.username LIMIT $2`,
      [query.cursor ?? null, limit + 1],
    )) as Array<{ username: string }>;
    const items = rows.slice(0, limit);
    return { items, nextCursor: rows.length > limit ? items[items.length - 1].username : null };
  }

  /** Ends every session of a user at once (a lost laptop); audited. */
  @Post('users/:username/end-sessions')
  @HttpCode(200)
  async endSessions(
    @CurrentActor() actor: Actor,
    @Param('username') username: string,
    @Body(EmptyBodyPipe) _body: unknown,
  ) {
    requireAdmin(actor);
    if (!USERNAME_PATTERN.test(username))
      throw new DomainError(ErrorCode.VALIDATION_FAILED, 'Not a username');
    return this.dataSource.transaction(async (manager) => {
      const [user] = (await manager.query(`SELECT id FROM users WHERE username = $1`, [username])) as Array<{
        id: string;
      }>;
      if (!user) throw new DomainError(ErrorCode.USER_NOT_FOUND, `No user "${username}"`);
      return { ended: await this.sessions.endAllForUser(manager, actor.id, user.id, 'ended-by-admin') };
    });
  }

  /**
   * Suspends (sessions end, pending requests cancelled, active grants revoked at once) or reinstates a
   * user; a `user.suspend` step-up bound to the username and `{ status, reason }`.
   */
  @Post('users/:username/status')
  @HttpCode(200)
  async setStatus(
    @CurrentActor() actor: Actor,
    @Param('username') username: string,
    @Body() body: SetUserStatusDto,
  ) {
    requireAdmin(actor);
    if (!USERNAME_PATTERN.test(username))
      throw new DomainError(ErrorCode.VALIDATION_FAILED, 'Not a username');
    const { stepUp, ...params } = body;
    const evidence = await this.stepUp.verify(actor, stepUp as never, {
      action: 'user.suspend',
      subjectId: username,
      subjectDigest: paramsDigest(params),
    });
    return this.accounts.setStatus(actor, username, body.status, body.reason, evidence);
  }

  /** Lifts the lockout that repeated denials put on a user for one entitlement; audited. */
  @Post('users/:username/lockouts/:entitlementId/unlock')
  @HttpCode(204)
  async unlock(
    @CurrentActor() actor: Actor,
    @Param('username') username: string,
    @Param('entitlementId') entitlementId: string,
    @Body(EmptyBodyPipe) _body: unknown,
  ): Promise<void> {
    requireAdmin(actor);
    if (!USERNAME_PATTERN.test(username))
      throw new DomainError(ErrorCode.VALIDATION_FAILED, 'Not a username');
    if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(entitlementId)) {
      throw new DomainError(ErrorCode.VALIDATION_FAILED, 'Not an entitlement id');
    }
    await this.accounts.unlock(actor, username, entitlementId);
  }

  /** The version in force and the activation history, newest first. */
  @Get('policies')
  async policyVersions(@CurrentActor() actor: Actor) {
    requireAdmin(actor);
    const { hash } = await this.policies.inForce();
    const items = (await this.dataSource.query(
      `SELECT a.hash, a.activated_at AS "activatedAt", a.activated_by AS "activatedBy"
         FROM policy_activations a ORDER BY a.id DESC LIMIT 100`,
    )) as unknown[];
    return { inForce: hash, items, nextCursor: null };
  }

  /**
   * Reloads POLICY_DIR with a `policy.reload` step-up (subject `policy`, params `{}`); an invalid policy
   * answers 422 with file, line and reason, and the version in force stays.
   */
  @Post('policies/reload')
  @HttpCode(200)
  async reloadPolicy(@CurrentActor() actor: Actor, @Body() body: PolicyReloadDto) {
    requireAdmin(actor);
    const evidence = await this.stepUp.verify(actor, body.stepUp as never, {
      action: 'policy.reload',
      subjectId: 'policy',
      subjectDigest: paramsDigest({}),
    });
    const loaded = await this.policies.loadFromDirectory(actor.id, evidence);
    return { hash: loaded.hash, changed: loaded.changed, entitlements: loaded.policy.entitlements.length };
  }

  /** Grants, newest first, optionally by state: REVOKE_FAILED ones are the operator's to-do list. */
  @Get('grants')
  async grants(@CurrentActor() actor: Actor, @Query() query: ListGrantsQuery) {
    requireAdmin(actor);
    const limit = query.limit ?? 50;
    const rows = (await this.dataSource.query(
      `SELECT g.id, g.request_id AS "requestId", g.connector, g.connector_type AS "connectorType",
              g.fingerprint, g.issued_at AS "issuedAt", g.not_after AS "notAfter", g.state,
              g.revoked_at AS "revokedAt", g.revoke_attempts AS "revokeAttempts", g.last_error AS "lastError",
              u.username AS requester, r.entitlement_id AS "entitlementId"
         FROM grants g JOIN elevation_requests r ON r.id = g.request_id JOIN users u ON u.id = r.requester_id
        WHERE ($1::text IS NULL OR g.state = $1) AND ($2::uuid IS NULL OR g.id < $2)
        ORDER BY g.id DESC LIMIT $3`,
      [query.state ?? null, query.cursor ?? null, limit + 1],
    )) as Array<{ id: string }>;
    const items = rows.slice(0, limit);
    return { items, nextCursor: rows.length > limit ? items[items.length - 1].id : null };
  }
}
