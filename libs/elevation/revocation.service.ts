import { Injectable, Logger } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { appendAuditEvent, SYSTEM_ACTOR } from '../audit/audit-log.js';
import { databaseNow } from '../db/clock.js';
import { ElevationRequestEntity, GrantEntity } from '../db/index.js';
import { GrantState } from '../domain/grant-state.js';
import { JobProducer } from '../jobs/job-producer.js';
import { ConnectorRegistry } from './connector-registry.js';
import { PolicyService } from './policy.service.js';
import { RequestsService } from './requests.service.js';

// Fixed first key of the overlap-key advisory lock, so it never meets another lock of ours.
const OVERLAP_LOCK_CLASS = 0x6a69746f; // "jito"

export type RevocationOutcome =
  | { status: 'revoked'; lagMs: number }
  | { status: 'already-revoked' }
  | { status: 'not-due'; remainingMs: number }
  | { status: 'unknown-grant' };

/**
 * Takes back credentials when their window ends. Idempotent: it acts on what PostgreSQL says, never on a
 * job's view of it, so a duplicate or late job is harmless (DESIGN §4.6).
 */
@Injectable()
export class RevocationService {
  private readonly logger = new Logger(RevocationService.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly policies: PolicyService,
    private readonly connectors: ConnectorRegistry,
    private readonly requests: RequestsService,
    private readonly jobs: JobProducer,
  ) {}

  /** Revokes a grant whose notAfter has passed (by PostgreSQL's clock), or whose early revoke was asked for. */
  async revokeGrant(grantId: string): Promise<RevocationOutcome> {
    const grants = this.dataSource.getRepository(GrantEntity);
    const grant = await grants.findOneBy({ id: grantId });
    if (!grant) return { status: 'unknown-grant' };
    if (grant.state === GrantState.REVOKED) return { status: 'already-revoked' };
    const [{ remaining_ms: remaining }] = (await this.dataSource.query(
      `SELECT (extract(epoch FROM ($1::timestamptz - now())) * 1000)::float8 AS remaining_ms`,
      [grant.notAfter],
    )) as Array<{ remaining_ms: number }>;
    if (remaining > 0 && !grant.revokeRequestedAt)
      return { status: 'not-due', remainingMs: Math.ceil(remaining) };

    // Shared external state that another live grant still holds stays; this grant alone ends.
    if (grant.overlapKey) {
      const held = await this.revokeIfHeldElsewhere(grant, grant.overlapKey);
      if (held) return held;
    }

    const request = await this.dataSource
      .getRepository(ElevationRequestEntity)
      .findOneByOrFail({ id: grant.requestId });
    const policy = await this.policies.byHash(request.policyHash);
    // External state first, outside the transaction: the connector's revoke is idempotent, so a crash after
    // it and before the commit only means the next attempt revokes an already-revoked credential.
    await this.connectors.get(policy, grant.connector).revoke(grant.externalRef);

    return this.dataSource.transaction((manager) => this.markRevoked(manager, grant, {}));
  }

  /**
   * When another grant with the same overlap key is ACTIVE and not yet due, marks this one REVOKED without
   * the connector (the audit event says who holds the state) and returns the outcome; null otherwise.
   * Check and mark run under a transaction-scoped advisory lock on the key, so of the last two holders
   * revoked at once, one waits, then finds the other REVOKED and takes the external state back.
   */
  private async revokeIfHeldElsewhere(
    grant: Pick<GrantEntity, 'id' | 'requestId'>,
    overlapKey: string,
  ): Promise<RevocationOutcome | null> {
    return this.dataSource.transaction(async (manager) => {
      await manager.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [OVERLAP_LOCK_CLASS, overlapKey]);
      const [holder] = (await manager.query(
        `SELECT id FROM grants
          WHERE overlap_key = $1 AND id <> $2 AND state = $3
            AND not_after > now() AND revoke_requested_at IS NULL
          ORDER BY not_after DESC LIMIT 1`,
        [overlapKey, grant.id, GrantState.ACTIVE],
      )) as Array<{ id: string }>;
      if (!holder) return null;
      return this.markRevoked(manager, grant, { externalRevokeSkipped: true, heldBy: holder.id });
    });
  }

  /** Marks a grant REVOKED with its audit event and ends its request, in the caller's transaction. */
  private async markRevoked(
    manager: EntityManager,
    { id: grantId, requestId }: Pick<GrantEntity, 'id' | 'requestId'>,
    extra: Record<string, unknown>,
  ): Promise<RevocationOutcome> {
    // Lock order request → grant → audit chain head, as on every other path, so no two paths deadlock.
    await manager.findOne(ElevationRequestEntity, {
      where: { id: requestId },
      lock: { mode: 'pessimistic_write' },
    });
    const locked = await manager.findOne(GrantEntity, {
      where: { id: grantId },
      lock: { mode: 'pessimistic_write' },
    });
    if (!locked || locked.state === GrantState.REVOKED) return { status: 'already-revoked' };
    const now = await databaseNow(manager);
    // The lag is measured from when revocation became due: notAfter, or the early revoke.
    const dueAt =
      locked.revokeRequestedAt && locked.revokeRequestedAt < locked.notAfter
        ? locked.revokeRequestedAt
        : locked.notAfter;
    const lagMs = now.getTime() - dueAt.getTime();
    await manager.update(GrantEntity, { id: grantId }, { state: GrantState.REVOKED, revokedAt: now });
    await appendAuditEvent(manager, {
      actorId: SYSTEM_ACTOR,
      action: 'grant.revoked',
      subjectType: 'grant',
      subjectId: grantId,
      requestId: locked.requestId,
      data: {
        reason: locked.revokeRequestedAt ? (locked.revokeReason ?? 'revoked') : 'expired',
        connector: locked.connector,
        externalRef: locked.externalRef,
        notAfter: locked.notAfter.toISOString(),
        revokedAt: now.toISOString(),
        lagMs,
        attempts: locked.revokeAttempts + 1,
        ...extra,
      },
    });
    await this.requests.endAtExpiry(manager, locked.requestId, now);
    return { status: 'revoked', lagMs };
  }

  /**
   * Records a failed attempt; after the last one the grant becomes REVOKE_FAILED with an alert event,
   * and the sweeper keeps retrying it (never a silent drop).
   */
  async recordFailure(grantId: string, error: unknown, finalAttempt: boolean): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    await this.dataSource.transaction(async (manager) => {
      const grant = await manager.findOne(GrantEntity, {
        where: { id: grantId },
        lock: { mode: 'pessimistic_write' },
      });
      if (!grant || grant.state === GrantState.REVOKED) return;
      const becomesFailed = finalAttempt && grant.state === GrantState.ACTIVE;
      await manager.update(
        GrantEntity,
        { id: grantId },
        {
          revokeAttempts: grant.revokeAttempts + 1,
          lastError: message.slice(0, 2000),
          ...(becomesFailed ? { state: GrantState.REVOKE_FAILED } : {}),
        },
      );
      if (becomesFailed) {
        this.logger.error(`ALERT: grant ${grantId} could not be revoked: ${message}`);
        await appendAuditEvent(manager, {
          actorId: SYSTEM_ACTOR,
          action: 'grant.revoke_failed',
          subjectType: 'grant',
          subjectId: grantId,
          requestId: grant.requestId,
          data: { alert: true, attempts: grant.revokeAttempts + 1, error: message.slice(0, 500) },
        });
      }
    });
  }

  /**
   * Re-enqueues the revocation of every grant not yet revoked, from PostgreSQL. Deterministic job ids make
   * this a no-op for jobs that still exist; after a Redis flush or a lost enqueue it rebuilds them.
   */
  async sweep(): Promise<number> {
    const pending = (await this.dataSource.query(
      `SELECT id, not_after, revoke_requested_at IS NOT NULL OR not_after <= now() AS due
         FROM grants WHERE state <> $1 ORDER BY not_after`,
      [GrantState.REVOKED],
    )) as Array<{ id: string; not_after: Date; due: boolean }>;
    for (const grant of pending) {
      // A due grant's job runs now even if a delayed one still waits (a lost promote, a skewed clock).
      if (grant.due) await this.jobs.revokeNow(grant.id);
      else await this.jobs.scheduleRevocation(grant.id, grant.not_after);
    }
    if (pending.length > 0) this.logger.debug(`Sweep scheduled ${pending.length} unrevoked grant(s)`);
    return pending.length;
  }
}
