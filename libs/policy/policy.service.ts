import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditAction } from '../audit/audit-actions.js';
import { appendAuditEvent, SYSTEM_ACTOR } from '../audit/audit-log.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { PolicyVersionEntity } from '../db/index.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import type { Policy } from '../domain/policy.js';
import { evidenceForAudit, type StepUpEvidence } from '../webauthn/evidence.js';
import { ActivationListener, POLICY_ACTIVATED_CHANNEL } from './activation-listener.js';
import { policyWarnings } from './policy-checks.js';
import { loadPolicyDir } from './policy-loader.js';

/** A policy together with the hash every request records. */
export interface PolicyVersion {
  hash: string;
  policy: Policy;
}

/** One activation: which version went into force, when, and by whom (a user id or `system`). */
export interface PolicyActivation {
  hash: string;
  activatedAt: Date;
  activatedBy: string;
}

/**
 * The policy in force and every stored version by hash. A load validates POLICY_DIR, stores the version
 * and activates it in PostgreSQL, so every broker instance follows the latest activation (inForce());
 * an invalid load throws PolicyError and changes nothing. The worker only reads versions by hash: a grant
 * is revoked with the connector settings it was issued under. The version in force is cached while a
 * LISTEN connection hears every activation (each notifies in its transaction); without it, read per call.
 */
@Injectable()
export class PolicyService implements OnModuleDestroy {
  private readonly logger = new Logger(PolicyService.name);
  private cached: PolicyVersion | null = null;
  /** Bumped by every activation heard (and when listening starts or stops): a read begun before is stale. */
  private generation = 0;
  private readonly versions = new Map<string, Policy>();
  private readonly listener: ActivationListener;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly dataSource: DataSource,
  ) {
    this.listener = new ActivationListener(config.databaseUrl, () => this.invalidate(), this.logger);
  }

  async onModuleDestroy(): Promise<void> {
    await this.listener.close();
  }

  private invalidate(): void {
    this.generation += 1;
    this.cached = null;
  }

  /**
   * Loads POLICY_DIR, stores the version if new and puts it in force for every instance, audited as
   * `actorId` (a user id with their `policy.reload` step-up, or `system` at boot and on SIGHUP). Throws PolicyError, naming file and line, when invalid.
   */
  async loadFromDirectory(
    actorId: string,
    evidence: StepUpEvidence | null = null,
  ): Promise<PolicyVersion & { changed: boolean }> {
    const { policy, hash } = await loadPolicyDir(this.config.policy.dir, {
      hardMaxDurationSeconds: this.config.policy.hardMaxDurationSeconds,
    });
    for (const warning of policyWarnings(policy)) this.logger.warn(`Policy ${hash.slice(0, 12)}: ${warning}`);
    const replaced = await this.dataSource.transaction(async (manager) => {
      await manager
        .createQueryBuilder()
        .insert()
        .into(PolicyVersionEntity)
        .values({ hash, content: policy, loadedAt: new Date(), loadedBy: actorId })
        .orIgnore()
        .execute();
      // Serialise activations, so the "previous" read below is the one this activation replaces.
      await manager.query(`LOCK TABLE policy_activations IN SHARE ROW EXCLUSIVE MODE`);
      const [previous] = (await manager.query(
        `SELECT hash FROM policy_activations ORDER BY id DESC LIMIT 1`,
      )) as Array<{ hash: string }>;
      if (previous?.hash === hash) return null;
      await manager.query(`INSERT INTO policy_activations (hash, activated_by) VALUES ($1, $2)`, [
        hash,
        actorId,
      ]);
      // Delivered on commit: every instance's cache of the version in force drops it (inForce()).
      await manager.query('SELECT pg_notify($1, $2)', [POLICY_ACTIVATED_CHANNEL, hash]);
      await appendAuditEvent(manager, {
        actorId,
        action: AuditAction.PolicyActivated,
        subjectType: 'policy',
        subjectId: hash,
        data: {
          hash,
          previousHash: previous?.hash ?? null,
          entitlements: policy.entitlements.map((entitlement) => entitlement.id),
          ...(evidence ? { evidence: evidenceForAudit(evidence) } : {}),
        },
      });
      return { previousHash: previous?.hash ?? null };
    });
    const changed = replaced !== null;
    this.versions.set(hash, policy);
    this.cached = { hash, policy };
    if (replaced?.previousHash && actorId === SYSTEM_ACTOR) {
      // Every broker follows the latest activation: a broker started (or sent SIGHUP) with a stale
      // POLICY_DIR puts that stale version in force everywhere. Say so loudly.
      this.logger.warn(
        `Policy ${hash.slice(0, 12)} from ${this.config.policy.dir} replaces ${replaced.previousHash.slice(0, 12)} for every broker`,
      );
    }
    this.logger.log(
      `Policy ${hash.slice(0, 12)} in force${changed ? '' : ' (unchanged)'}: ${policy.entitlements.length} entitlements`,
    );
    return { hash, policy, changed };
  }

  /**
   * The version in force for every instance: the latest activation in PostgreSQL (one indexed read), or
   * the cached one while the listener hears every activation and none came since it was read.
   */
  async inForce(): Promise<PolicyVersion> {
    this.listener.ensure();
    if (this.listener.live && this.cached) return this.cached;
    const generation = this.generation;
    const [latest] = (await this.dataSource.query(
      `SELECT hash FROM policy_activations ORDER BY id DESC LIMIT 1`,
    )) as Array<{ hash: string }>;
    if (!latest) throw new DomainError(ErrorCode.INTERNAL, 'No policy is in force');
    const version = { hash: latest.hash, policy: await this.byHash(latest.hash) };
    if (generation === this.generation) this.cached = version;
    return version;
  }

  /** The hash in force and the last 100 activations, newest first. */
  async history(): Promise<{ inForce: string; items: PolicyActivation[] }> {
    const { hash } = await this.inForce();
    const items = (await this.dataSource.query(
      `SELECT a.hash, a.activated_at AS "activatedAt", a.activated_by AS "activatedBy"
         FROM policy_activations a ORDER BY a.id DESC LIMIT 100`,
    )) as PolicyActivation[];
    return { inForce: hash, items };
  }

  /** A stored version by hash (validated when it was stored). */
  async byHash(hash: string): Promise<Policy> {
    const cached = this.versions.get(hash);
    if (cached) return cached;
    const row = await this.dataSource.getRepository(PolicyVersionEntity).findOneByOrFail({ hash });
    const policy = row.content as Policy;
    this.versions.set(hash, policy);
    return policy;
  }
}
