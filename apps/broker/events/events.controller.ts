import { Controller, Get, Headers, Res } from '@nestjs/common';
import type { Response } from 'express';
import type { Actor } from '../../../libs/domain/actor.js';
import { CurrentActor, CurrentSessionId } from '../auth/current-actor.decorator.js';
import { Background } from '../auth/public.decorator.js';
import { LiveUpdates } from './live-updates.js';

/** Live updates of the requests the signed-in person may see, as Server-Sent Events (DESIGN §10). */
@Controller('api/events')
export class EventsController {
  constructor(private readonly live: LiveUpdates) {}

  /**
   * `hello` { serverTime } first, then `request` { requestId, state, grantState } per committed change.
   * Opening a stream checks the session without extending it: a forgotten tab does not keep it alive.
   */
  @Get()
  @Background()
  stream(
    @CurrentActor() actor: Actor,
    @CurrentSessionId() sessionId: string,
    @Headers('origin') origin: string | undefined,
    @Res() response: Response,
  ): void {
    this.live.open(actor, sessionId, origin, response);
  }
}
