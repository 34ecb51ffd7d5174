import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { groupsOf, isApprover, isEligible } from '../../../libs/domain/policy.js';
import type { Actor } from '../../../libs/domain/actor.js';
import { mayReview } from '../../../libs/domain/request-rules.js';
import { PolicyService } from '../../../libs/policy/policy.service.js';
import { InvitesService } from '../../../libs/identity/invites.service.js';
import { CurrentActor, CurrentSessionId, NoticesPending } from '../auth/current-actor.decorator.js';
import { EmptyBodyPipe, UuidPipe } from '../errors/validation.js';

@Controller('api')
export class EntitlementsController {
  constructor(
    private readonly policies: PolicyService,
    private readonly invites: InvitesService,
  ) {}

  /** Entitlements the caller may request, approve or (break-glass) review, with the limits that apply. */
  @Get('entitlements')
  async list(@CurrentActor() actor: Actor) {
    const { policy, hash } = await this.policies.inForce();
    const items = policy.entitlements
      .map((entitlement) => ({
        entitlement,
        eligible: isEligible(policy, entitlement, actor.username),
        approver: isApprover(policy, entitlement, actor.username),
        reviewer:
          entitlement.breakGlass !== null && mayReview(actor, { entitlementId: entitlement.id }, policy),
      }))
      .filter(({ eligible, approver, reviewer }) => eligible || approver || reviewer)
      .map(({ entitlement, eligible, approver, reviewer }) => ({
        id: entitlement.id,
        title: entitlement.title,
        description: entitlement.description ?? null,
        connectorType: policy.connectors[entitlement.connector]?.type ?? null,
        maxDurationSeconds: entitlement.maxDurationSeconds,
        requires: entitlement.requires,
        approvalsRequired: entitlement.approval?.approvals ?? 0,
        breakGlass: entitlement.breakGlass !== null,
        selfService: entitlement.selfService,
        eligible,
        approver,
        reviewer,
      }));
    return { policyHash: hash, items };
  }

  /**
   * The signed-in person (DESIGN §10 shape), with `recoveryNotices` while the account was recovered and
   * this session's passkey has not acknowledged it.
   */
  @Get('me')
  async me(
    @CurrentActor() actor: Actor,
    @CurrentSessionId() sessionId: string,
    @NoticesPending() noticesPending: boolean,
  ) {
    const { policy } = await this.policies.inForce();
    // The session lookup already said whether there are any: most calls need no second query.
    const notices = noticesPending ? await this.invites.noticesFor(sessionId) : [];
    return {
      id: actor.id,
      username: actor.username,
      displayName: actor.displayName,
      roles: actor.roles,
      groups: groupsOf(policy, actor.username),
      ...(notices.length > 0
        ? {
            recoveryNotices: notices.map((notice) => ({
              ...notice,
              recoveredAt: notice.recoveredAt.toISOString(),
              approvedAt: notice.approvedAt?.toISOString() ?? null,
            })),
          }
        : {}),
    };
  }

  /** The session's passkey has seen a recovery notice; audited. */
  @Post('me/recovery-notices/:inviteId/acknowledge')
  @HttpCode(204)
  async acknowledgeRecovery(
    @CurrentActor() actor: Actor,
    @CurrentSessionId() sessionId: string,
    @Param('inviteId', UuidPipe) inviteId: string,
    @Body(EmptyBodyPipe) _body: unknown,
  ): Promise<void> {
    await this.invites.acknowledge(actor, sessionId, inviteId);
  }
}
