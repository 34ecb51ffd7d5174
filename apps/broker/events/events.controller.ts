import { Controller, Get, Headers, Res } from '@nestjs/common';
import type { Response } from 'express';
import type { Actor } from '../../../libs/domain/actor.js';
import { CurrentActor, CurrentSessionId } from '../auth/current-actor.decorator.js';
import { LiveUpdates } from './live-updates.js';

/** Live updates of the requests the signed-in person may see, as Server-Sent Events (DESIGN §10). */
@Controller('api/events')
export class EventsController {
  constructor(private readonly live: LiveUpdates) {}

  /** `hello` { serverTime } first, then `request` { requestId, state, grantState } per committed change. */
  @Get()
  stream(
    @CurrentActor() actor: Actor,
    @CurrentSessionId() sessionId: string,
    @Headers('origin') origin: string | undefined,
    @Res() response: Response,
  ): void {
    this.live.open(actor, sessionId, origin, response);
  }
}
