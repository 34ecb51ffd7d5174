import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger } from '@nestjs/common';
import type { Job } from 'bullmq';
import { DataSource } from 'typeorm';
import { sequencePendingAuditEvents } from '../../libs/audit/audit-sequencer.js';
import { appendCheckpoint, type CheckpointResult } from '../../libs/audit/checkpoint-log.js';
import { issueCheckpoint, logOriginOf, type TlogCheckpoint } from '../../libs/audit/merkle-log.js';
import { parseVkey } from '../../libs/audit/tlog-note.js';
import type { Witness } from '../../libs/audit/witness-client.js';
import { submitToWitnesses, type WitnessOutcome } from '../../libs/audit/witness-log.js';
import { APP_CONFIG, type AppConfig } from '../../libs/config/config.js';
import { ConnectorRegistry } from '../../libs/elevation/connector-registry.js';
import { GrantsService } from '../../libs/elevation/grants.service.js';
import { RequestSweeper } from '../../libs/elevation/request-sweeper.js';
import { purgeExpiredChallenges } from '../../libs/identity/challenge-purge.js';
import { JobName, QueueName } from '../../libs/jobs/jobs.js';
import { assertHandlesEveryJob, dispatch, type JobHandlers } from './job-handlers.js';

/** Periodic work that rebuilds everything Redis could have lost from PostgreSQL. */
@Processor(QueueName.Maintenance)
export class MaintenanceProcessor extends WorkerHost {
  private readonly logger = new Logger(MaintenanceProcessor.name);
  private readonly handlers: JobHandlers = {
    [JobName.Sweep]: () => this.sweep(),
    [JobName.Checkpoint]: () => this.checkpoint(),
  };
  /** AUDIT_WITNESSES, validated at boot (libs/config/audit-witnesses.ts). */
  private readonly witnesses: Witness[];

  constructor(
    private readonly grants: GrantsService,
    private readonly requests: RequestSweeper,
    private readonly dataSource: DataSource,
    private readonly connectors: ConnectorRegistry,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    super();
    assertHandlesEveryJob(QueueName.Maintenance, this.handlers);
    this.witnesses = config.auditWitnesses.map(({ name, url, vkey }) => ({
      name,
      url,
      verifier: parseVkey(vkey),
    }));
  }

  /** Connection errors (Redis restarting) are logged; BullMQ would otherwise print them raw. */
  @OnWorkerEvent('error')
  onWorkerError(error: Error): void {
    this.logger.warn(`Worker connection: ${error.message}`);
  }

  /** Rebuilds revocation and lifecycle jobs from PostgreSQL and reports overdue break-glass reviews. */
  private async sweep(): Promise<Record<string, number | string>> {
    // Each part on its own: a Redis timeout while re-enqueueing grants must not skip the other parts.
    const parts: Record<string, () => Promise<number>> = {
      // Audit events committed by a process that stopped before chaining them (issue 22).
      pendingAuditEvents: () => sequencePendingAuditEvents(this.dataSource),
      grants: () => this.grants.sweep(),
      // Before mintUndos: an attempt whose broker stopped mid-mint becomes an undo it sends in the same sweep.
      abandonedMints: () => this.grants.claimAbandonedReservations(),
      mintUndos: () => this.grants.retryMintUndos(),
      requests: () => this.requests.sweepLifecycle(),
      overdueReviews: () => this.requests.reportOverdueReviews(),
      expiredChallenges: () => purgeExpiredChallenges(this.dataSource),
    };
    const outcome: Record<string, number | string> = {};
    let failed: unknown = null;
    for (const [name, run] of Object.entries(parts)) {
      try {
        outcome[name] = await run();
      } catch (error) {
        failed ??= error;
        outcome[name] = `failed: ${error instanceof Error ? error.message : String(error)}`;
        this.logger.warn(`Sweep part ${name} failed: ${outcome[name]}`);
      }
    }
    if (failed) throw failed;
    return outcome;
  }

  /**
   * Signs the audit chain head with the audit key (an audit.checkpoint event), unless it has not moved, then
   * integrates the new events into the Merkle tree and signs its checkpoint.
   */
  private async checkpoint(): Promise<
    CheckpointResult & { treeSize?: number; witnesses?: Record<string, WitnessOutcome> }
  > {
    const result = await appendCheckpoint(this.dataSource, this.connectors.signingKeys);
    if (result.status === 'written') {
      this.logger.log(`Audit checkpoint at seq ${result.checkpoint.seq} (event ${result.eventSeq})`);
    }
    // Then the Merkle tree (issue 22): the sequencer catches up and the audit key signs a C2SP checkpoint.
    const signed = await issueCheckpoint(
      this.dataSource,
      this.connectors.signingKeys,
      logOriginOf(this.config.webauthn.origins),
    );
    if (!signed) return result;
    return { ...result, treeSize: signed.size, witnesses: await this.witness(signed) };
  }

  /** Each witness cosigns the checkpoint, or is warned about and tried again next time: it never blocks one. */
  private async witness(checkpoint: TlogCheckpoint): Promise<Record<string, WitnessOutcome>> {
    if (this.witnesses.length === 0) return {};
    const outcomes = await submitToWitnesses(this.dataSource, this.witnesses, checkpoint);
    for (const [name, outcome] of Object.entries(outcomes)) {
      if (outcome.status === 'failed')
        this.logger.warn(`Witness ${name} did not cosign checkpoint ${checkpoint.size}: ${outcome.reason}`);
    }
    return outcomes;
  }

  process(job: Job): Promise<unknown> {
    return dispatch(QueueName.Maintenance, this.handlers, job);
  }
}
