import { Inject, Injectable, Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { PolicyVersionEntity } from '../db/index.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import type { Policy } from '../domain/policy.js';
import { loadPolicyDir } from '../policy/policy-loader.js';

/** A policy together with the hash every request records. */
export interface PolicyVersion {
  hash: string;
  policy: Policy;
}

/**
 * The policy in force (loaded by the broker from POLICY_DIR) and every stored version by hash (what the
 * worker uses: a grant is revoked with the connector settings it was issued under).
 */
@Injectable()
export class PolicyService {
  private readonly logger = new Logger(PolicyService.name);
  private inForce: PolicyVersion | null = null;
  private readonly versions = new Map<string, Policy>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly dataSource: DataSource,
  ) {}

  /** Loads POLICY_DIR, stores the version if new, and puts it in force. Throws PolicyError when invalid. */
  async loadFromDirectory(loadedBy: string): Promise<PolicyVersion> {
    const { policy, hash } = await loadPolicyDir(this.config.policy.dir, {
      hardMaxDurationSeconds: this.config.policy.hardMaxDurationSeconds,
    });
    await this.dataSource
      .createQueryBuilder()
      .insert()
      .into(PolicyVersionEntity)
      .values({ hash, content: policy, loadedAt: new Date(), loadedBy })
      .orIgnore()
      .execute();
    this.versions.set(hash, policy);
    this.inForce = { hash, policy };
    this.logger.log(`Policy ${hash.slice(0, 12)} in force: ${policy.entitlements.length} entitlements`);
    return this.inForce;
  }

  /** The version in force; only the broker has one. */
  current(): PolicyVersion {
    if (!this.inForce) throw new DomainError(ErrorCode.INTERNAL, 'No policy is loaded');
    return this.inForce;
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
