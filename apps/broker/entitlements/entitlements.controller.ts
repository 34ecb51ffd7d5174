import { Controller, Get } from '@nestjs/common';
import { groupsOf, isApprover, isEligible } from '../../../libs/domain/policy.js';
import type { Actor } from '../../../libs/elevation/actor.js';
import { PolicyService } from '../../../libs/elevation/policy.service.js';
import { CurrentActor } from '../auth/current-actor.decorator.js';

@Controller('api')
export class EntitlementsController {
  constructor(private readonly policies: PolicyService) {}

  /** Entitlements the caller may request or approve, with the limits that apply. */
  @Get('entitlements')
  async list(@CurrentActor() actor: Actor) {
    const { policy, hash } = await this.policies.inForce();
    const items = policy.entitlements
      .map((entitlement) => ({
        entitlement,
        eligible: isEligible(policy, entitlement, actor.username),
        approver: isApprover(policy, entitlement, actor.username),
      }))
      .filter(({ eligible, approver }) => eligible || approver)
      .map(({ entitlement, eligible, approver }) => ({
        id: entitlement.id,
        title: entitlement.title,
        connectorType: policy.connectors[entitlement.connector]?.type ?? null,
        maxDurationSeconds: entitlement.maxDurationSeconds,
        requires: entitlement.requires,
        approvalsRequired: entitlement.approval?.approvals ?? 0,
        breakGlass: entitlement.breakGlass !== null,
        selfService: entitlement.selfService,
        eligible,
        approver,
      }));
    return { policyHash: hash, items };
  }

  /** The signed-in person (DESIGN §10 shape). */
  @Get('me')
  async me(@CurrentActor() actor: Actor) {
    const { policy } = await this.policies.inForce();
    return {
      id: actor.id,
      username: actor.username,
      displayName: actor.displayName,
      roles: actor.roles,
      groups: groupsOf(policy, actor.username),
    };
  }
}
