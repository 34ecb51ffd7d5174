import { Controller, Get, Query } from '@nestjs/common';
import type { Actor } from '../../../libs/domain/actor.js';
import { RequestQueries } from '../../../libs/elevation/request-queries.js';
import { CurrentActor } from '../auth/current-actor.decorator.js';
import { EmptyBodyPipe } from '../errors/validation.js';
import { DEFAULT_PAGE_SIZE, ListRequestsQuery, toRequestView } from '../requests/requests.dto.js';

/** What approvers act on: their inbox and the break-glass post-review queue. */
@Controller('api')
export class ApprovalsController {
  constructor(private readonly queries: RequestQueries) {}

  /** Pending requests the caller may decide now, newest first. */
  @Get('approvals/inbox')
  async inbox(@CurrentActor() actor: Actor, @Query() query: ListRequestsQuery) {
    const page = await this.queries.inbox(actor, {
      limit: query.limit ?? DEFAULT_PAGE_SIZE,
      cursor: query.cursor ?? null,
    });
    const facts = await this.queries.viewFacts(page.items);
    return { items: page.items.map((item) => toRequestView(item, facts)), nextCursor: page.nextCursor };
  }

  /** Break-glass requests awaiting post-review by the caller, most overdue first, with an `overdue` flag. */
  @Get('reviews')
  async reviews(@CurrentActor() actor: Actor, @Query(EmptyBodyPipe) _query: unknown) {
    const queue = await this.queries.reviewQueue(actor);
    const facts = await this.queries.viewFacts(queue);
    return {
      items: queue.map((item) => ({ ...toRequestView(item, facts), overdue: item.overdue })),
      nextCursor: null,
    };
  }
}
