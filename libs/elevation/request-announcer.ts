import { Injectable, Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { ElevationRequestEntity } from '../db/index.js';
import { RequestEventPublisher, type RequestEvent } from '../jobs/request-events.js';

/**
 * Announces committed request changes to every broker's live-update stream (DESIGN §2): reads the
 * requests as committed (never a rolled-back change) and publishes their ids and states through Redis.
 */
@Injectable()
export class RequestAnnouncer {
  private readonly logger = new Logger(RequestAnnouncer.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly publisher: RequestEventPublisher,
  ) {}

  /** Publishes the committed state of each request; a failure is logged, as pages refetch on reconnect. */
  async announce(requestIds: readonly string[]): Promise<void> {
    const ids = [...new Set(requestIds)];
    if (ids.length === 0) return;
    try {
      const events = (await this.dataSource.query(
        `SELECT r.id AS "requestId", r.requester_id AS "requesterId", r.entitlement_id AS "entitlementId",
                r.break_glass AS "breakGlass", r.state,
                (SELECT g.state FROM grants g WHERE g.request_id = r.id
                  ORDER BY g.issued_at DESC LIMIT 1) AS "grantState"
           FROM elevation_requests r WHERE r.id = ANY($1::uuid[])`,
        [ids],
      )) as RequestEvent[];
      await this.publisher.publish(events);
    } catch (error) {
      this.logger.warn(`Could not announce request changes: ${String(error)}`);
    }
  }

  /**
   * Publishes changes whose committed state the caller knows because its transaction wrote them (the worker's
   * revocations), without reading the requests back; a failure is logged, as in announce().
   */
  async announceCommitted(events: readonly RequestEvent[]): Promise<void> {
    try {
      await this.publisher.publish(events);
    } catch (error) {
      this.logger.warn(`Could not announce request changes: ${String(error)}`);
    }
  }
}

/** The announcement of a request as committed, with the state of its grant. */
export function committedEvent(
  request: Pick<ElevationRequestEntity, 'id' | 'requesterId' | 'entitlementId' | 'breakGlass' | 'state'>,
  grantState: string | null,
): RequestEvent {
  const { id: requestId, requesterId, entitlementId, breakGlass, state } = request;
  return { requestId, requesterId, entitlementId, breakGlass, state, grantState };
}
