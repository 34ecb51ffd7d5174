import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { isAdmin, type Actor } from '../../../libs/domain/actor.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { USERNAME_PATTERN } from '../../../libs/domain/policy.js';
import { RequestQueries } from '../../../libs/elevation/request-queries.js';
import { StepUpService } from '../../../libs/identity/step-up.service.js';
import { NotificationSettingsService } from '../../../libs/notify/notification-settings.service.js';
import { CurrentActor } from '../auth/current-actor.decorator.js';
import { EmptyBodyPipe } from '../errors/validation.js';
import { ListDeliveriesQuery, SetEmailDto, SetPreferencesDto } from './notifications.dto.js';

const UNSEEN_SCAN = 100;

/** Notification settings (the caller's, an admin's for anyone), unseen counts, and the delivery log. */
@Controller('api')
export class NotificationsController {
  constructor(
    private readonly settings: NotificationSettingsService,
    private readonly stepUp: StepUpService,
    private readonly queries: RequestQueries,
  ) {}

  /** `{ email, preferences, channels, digestIntervalSeconds }` of the caller. */
  @Get('me/notifications')
  get(@CurrentActor() actor: Actor, @Query(EmptyBodyPipe) _query: unknown) {
    return this.settings.settingsOf(actor.id);
  }

  /** Sets the caller's e-mail address: a `user.email` step-up, subject the username, params `{ email }`. */
  @Post('me/notifications/email')
  @HttpCode(200)
  async setOwnEmail(@CurrentActor() actor: Actor, @Body() body: SetEmailDto) {
    const evidence = await this.stepUp.verifyFor(actor, 'user.email', actor.username, body);
    await this.settings.setEmail(actor, actor.username, body.email, evidence);
    return this.settings.settingsOf(actor.id);
  }

  /** The caller's channel preferences. */
  @Post('me/notifications/preferences')
  @HttpCode(200)
  async setPreferences(@CurrentActor() actor: Actor, @Body() body: SetPreferencesDto) {
    await this.settings.setPreferences(actor.id, { email: body.email });
    return this.settings.settingsOf(actor.id);
  }

  /** Pending requests the caller may decide and has not opened, and break-glass reviews waiting: for the nav. */
  @Get('me/unread')
  async unread(@CurrentActor() actor: Actor, @Query(EmptyBodyPipe) _query: unknown) {
    const inbox = await this.queries.inbox(actor, { limit: UNSEEN_SCAN, cursor: null });
    const approvals = await this.settings.unseenOf(
      actor.id,
      inbox.items.map((item) => item.id),
    );
    const reviews = (await this.queries.reviewQueue(actor)).length;
    return { approvals, reviews };
  }

  /** An admin sets anyone's address, with the same `user.email` step-up (subject that username). */
  @Post('admin/users/:username/email')
  @HttpCode(200)
  async setEmail(
    @CurrentActor() actor: Actor,
    @Param('username') username: string,
    @Body() body: SetEmailDto,
  ) {
    requireAdmin(actor);
    if (!USERNAME_PATTERN.test(username))
      throw new DomainError(ErrorCode.VALIDATION_FAILED, 'Not a username');
    const evidence = await this.stepUp.verifyFor(actor, 'user.email', username, body);
    await this.settings.setEmail(actor, username, body.email, evidence);
    return { username, emailSet: body.email !== null };
  }

  /** Every delivery, newest first: channel, recipient, kind, status, attempts, last error. */
  @Get('admin/notifications')
  deliveries(@CurrentActor() actor: Actor, @Query() query: ListDeliveriesQuery) {
    requireAdmin(actor);
    return this.settings.deliveries({
      status: query.status ?? null,
      limit: query.limit ?? 50,
      cursor: query.cursor ?? null,
    });
  }
}

function requireAdmin(actor: Actor): void {
  if (!isAdmin(actor)) throw new DomainError(ErrorCode.FORBIDDEN, 'Admins only');
}
