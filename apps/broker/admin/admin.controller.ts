import { EntityNotFoundError } from 'typeorm';
import { Body, Controller, Get, Header, HttpCode, Param, Post, Query } from '@nestjs/common';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { USERNAME_PATTERN } from '../../../libs/domain/policy.js';
import type { Actor } from '../../../libs/domain/actor.js';
import { GrantsService } from '../../../libs/elevation/grants.service.js';
import { PolicyService } from '../../../libs/policy/policy.service.js';
import { InvitesService } from '../../../libs/identity/invites.service.js';
import { StepUpService } from '../../../libs/identity/step-up.service.js';
import { UsersService } from '../../../libs/identity/users.service.js';
import { evidenceForAudit } from '../../../libs/webauthn/evidence.js';
import { CurrentActor } from '../auth/current-actor.decorator.js';
import { EmptyBodyPipe, UuidPipe } from '../errors/validation.js';
import {
  ApproveInviteDto,
  CreateInviteDto,
  DisableAuthenticatorDto,
  ListInvitesQuery,
  ListGrantsQuery,
  ListUsersQuery,
  PolicyReloadDto,
  RetryRevocationDto,
  SetUserStatusDto,
} from './admin.dto.js';

function requireAdmin(actor: Actor): void {
  if (!actor.roles.includes('admin')) throw new DomainError(ErrorCode.FORBIDDEN, 'Admins only');
}

function assertUsername(username: string): void {
  if (!USERNAME_PATTERN.test(username)) throw new DomainError(ErrorCode.VALIDATION_FAILED, 'Not a username');
}

/** Administration (admin role): invites, users and their sessions, policy versions, grants. */
@Controller('api/admin')
export class AdminController {
  constructor(
    private readonly invites: InvitesService,
    private readonly stepUp: StepUpService,
    private readonly accounts: UsersService,
    private readonly policies: PolicyService,
    private readonly grants: GrantsService,
  ) {}

  /**
   * `{ username, displayName?, roles, stepUp }` with an `invite.create` step-up whose subject is the username.
   * An invite for a privileged user (libs/domain/recovery-rules.ts) that needs a second admin answers
   * `state: "pending-approval"`: its link works once one approves it (POST invites/:id/approve).
   */
  @Post('invites')
  @HttpCode(201)
  @Header('Cache-Control', 'no-store')
  async createInvite(@CurrentActor() actor: Actor, @Body() body: CreateInviteDto) {
    requireAdmin(actor);
    const evidence = await this.stepUp.verifyFor(actor, 'invite.create', body.username, body);
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

  /** Invites waiting for a second admin (`?state=pending-approval`, the only state listed). */
  @Get('invites')
  async listInvites(@CurrentActor() actor: Actor, @Query() query: ListInvitesQuery) {
    requireAdmin(actor);
    if (query.state === 'open') return { items: await this.invites.open(), nextCursor: null };
    return { items: await this.invites.pending(), nextCursor: null };
  }

  /** Revokes an unused invite: its link fails from now on (409 INVITE_USED, 410 INVITE_EXPIRED otherwise). */
  @Post('invites/:id/revoke')
  @HttpCode(200)
  async revokeInvite(
    @CurrentActor() actor: Actor,
    @Param('id', UuidPipe) id: string,
    @Body(EmptyBodyPipe) _body: unknown,
  ) {
    requireAdmin(actor);
    return { ...(await this.invites.revoke(actor, id)), state: 'revoked' };
  }

  /**
   * A second admin approves a pending invite with an `invite.approve` step-up (subject the invite id, params
   * `{}`); the creator or the invited user gets 403 INVITE_SELF_APPROVAL, an admin enrolled from the
   * creator's invites INVITE_APPROVER_NOT_INDEPENDENT, one too recent SECOND_ADMIN_TOO_RECENT.
   */
  @Post('invites/:id/approve')
  @HttpCode(200)
  async approveInvite(
    @CurrentActor() actor: Actor,
    @Param('id', UuidPipe) id: string,
    @Body() body: ApproveInviteDto,
  ) {
    requireAdmin(actor);
    const evidence = await this.stepUp.verifyFor(actor, 'invite.approve', id, body);
    const approved = await this.invites.approve(actor, id, evidence);
    return { ...approved, expiresAt: approved.expiresAt.toISOString() };
  }

  /** Users by username, keyset-paginated (`?limit=&cursor=<last username>`). */
  @Get('users')
  async users(@CurrentActor() actor: Actor, @Query() query: ListUsersQuery) {
    requireAdmin(actor);
    return this.accounts.list({ cursor: query.cursor ?? null, limit: query.limit ?? 100 });
  }

  /** One person: groups (from the policy in force), roles, status, passkeys (disabled ones too) and live sessions. */
  @Get('users/:username')
  async person(@CurrentActor() actor: Actor, @Param('username') username: string) {
    requireAdmin(actor);
    assertUsername(username);
    return this.accounts.person(username);
  }

  /**
   * Disables one of a person's passkeys (lost or stolen) with an `authenticator.disable` step-up whose subject
   * is the passkey id and params `{ reason }`; its sessions end. Also the last usable one (`lastUsable: true`,
   * an alert in the audit event: the person then needs a recovery invite); never one's own (403).
   */
  @Post('users/:username/authenticators/:id/disable')
  @HttpCode(200)
  async disableAuthenticator(
    @CurrentActor() actor: Actor,
    @Param('username') username: string,
    @Param('id', UuidPipe) id: string,
    @Body() body: DisableAuthenticatorDto,
  ) {
    requireAdmin(actor);
    assertUsername(username);
    const evidence = await this.stepUp.verifyFor(actor, 'authenticator.disable', id, body);
    return { id, ...(await this.accounts.disableAuthenticator(actor, username, id, body.reason, evidence)) };
  }

  /** Ends one live session of a person; audited (`session.ended`, reason `ended-by-admin`). */
  @Post('users/:username/sessions/:id/end')
  @HttpCode(200)
  async endSession(
    @CurrentActor() actor: Actor,
    @Param('username') username: string,
    @Param('id', UuidPipe) id: string,
    @Body(EmptyBodyPipe) _body: unknown,
  ) {
    requireAdmin(actor);
    assertUsername(username);
    await this.accounts.endSession(actor, username, id);
    return { id, ended: true };
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
    return { ended: await this.accounts.endSessions(actor, username) };
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
    const evidence = await this.stepUp.verifyFor(actor, 'user.suspend', username, body);
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
    const { inForce, items } = await this.policies.history();
    return { inForce, items, nextCursor: null };
  }

  /** One stored policy version's document, for the diff between two versions; 404 for an unknown hash. */
  @Get('policies/:hash')
  async policyVersion(@CurrentActor() actor: Actor, @Param('hash') hash: string) {
    requireAdmin(actor);
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new DomainError(ErrorCode.VALIDATION_FAILED, 'Not a policy hash');
    try {
      return { hash, content: await this.policies.byHash(hash) };
    } catch (error) {
      if (error instanceof EntityNotFoundError)
        throw new DomainError(ErrorCode.NOT_FOUND, 'No such policy version');
      throw error;
    }
  }

  /**
   * Reloads POLICY_DIR with a `policy.reload` step-up (subject `policy`, params `{}`); an invalid policy
   * answers 422 with file, line and reason, and the version in force stays.
   */
  @Post('policies/reload')
  @HttpCode(200)
  async reloadPolicy(@CurrentActor() actor: Actor, @Body() body: PolicyReloadDto) {
    requireAdmin(actor);
    const evidence = await this.stepUp.verifyFor(actor, 'policy.reload', 'policy', body);
    const loaded = await this.policies.loadFromDirectory(actor.id, evidence);
    return { hash: loaded.hash, changed: loaded.changed, entitlements: loaded.policy.entitlements.length };
  }

  /** Grants, newest first, optionally by state: REVOKE_FAILED ones are the operator's to-do list. */
  @Get('grants')
  async listGrants(@CurrentActor() actor: Actor, @Query() query: ListGrantsQuery) {
    requireAdmin(actor);
    return this.grants.list({
      state: query.state ?? null,
      cursor: query.cursor ?? null,
      limit: query.limit ?? 50,
    });
  }

  /**
   * Tries a stuck revocation again at once (REVOKE_FAILED or overdue), with a `grant.retry-revoke` step-up whose subject
   * is the grant id (params `{}`); audited. 409 GRANT_ALREADY_REVOKED when there is nothing to retry.
   */
  @Post('grants/:id/retry-revocation')
  @HttpCode(202)
  async retryRevocation(
    @CurrentActor() actor: Actor,
    @Param('id', UuidPipe) id: string,
    @Body() body: RetryRevocationDto,
  ) {
    requireAdmin(actor);
    const evidence = await this.stepUp.verifyFor(actor, 'grant.retry-revoke', id, body);
    const state = await this.grants.retryRevocation(actor, id, evidenceForAudit(evidence));
    return { id, state, retried: true };
  }
}
