import { Controller, Get } from '@nestjs/common';
import { seesEverything, type Actor } from '../../../libs/domain/actor.js';
import { workloadUsername, type Policy } from '../../../libs/domain/policy.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { RequestQueries } from '../../../libs/elevation/request-queries.js';
import { PolicyService } from '../../../libs/policy/policy.service.js';
import { CurrentActor } from '../auth/current-actor.decorator.js';
import { toRequestView } from '../requests/requests.dto.js';

/** How many of each workload's requests the page lists, newest first. */
export const RECENT_WORKLOAD_REQUESTS = 10;

/** The workloads of a policy and the entitlements each may request. */
export function workloadsOf(policy: Policy) {
  const entitlements = policy.entitlements;
  return (policy.workloads ?? []).map((workload) => ({
    id: workload.id,
    title: workload.title,
    issuer: workload.issuer,
    audience: workload.audience,
    subject: workload.subject,
    ownerGroup: workload.ownerGroup,
    entitlements: entitlements
      .filter((entitlement) => entitlement.eligibleWorkloads?.includes(workload.id))
      .map((entitlement) => entitlement.id),
  }));
}

/** Non-human requesters (issue 21) as admins and auditors see them: who they are and what they asked for. */
@Controller('api/admin/workloads')
export class WorkloadsController {
  constructor(
    private readonly policies: PolicyService,
    private readonly queries: RequestQueries,
  ) {}

  /** `{ workloads: [{ id, title, issuer, audience, subject, ownerGroup, entitlements, recentRequests }] }`. */
  @Get()
  async list(@CurrentActor() actor: Actor) {
    if (!seesEverything(actor)) throw new DomainError(ErrorCode.FORBIDDEN, 'Admins and auditors only');
    const { policy } = await this.policies.inForce();
    const workloads = await Promise.all(
      workloadsOf(policy).map(async (workload) => {
        const { items } = await this.queries.list(actor, {
          limit: RECENT_WORKLOAD_REQUESTS,
          requester: workloadUsername(workload.id),
        });
        const facts = await this.queries.viewFacts(items);
        return { ...workload, recentRequests: items.map((item) => toRequestView(item, facts)) };
      }),
    );
    return { workloads };
  }
}
