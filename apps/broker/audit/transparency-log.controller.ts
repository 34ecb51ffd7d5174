import { Body, Controller, Get, Header, HttpCode, Inject, Post, Query } from '@nestjs/common';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';
import { DataSource } from 'typeorm';
import {
  consistencyOf,
  inclusionOf,
  integratedSize,
  issueCheckpoint,
  logOriginOf,
  storedCheckpoint,
} from '../../../libs/audit/merkle-log.js';
import { ed25519PublicKey, formatVkey, noteVerifier } from '../../../libs/audit/tlog-note.js';
import { withCosignatures } from '../../../libs/audit/witness-log.js';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import type { Actor } from '../../../libs/domain/actor.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { ConnectorRegistry } from '../../../libs/elevation/connector-registry.js';
import { CurrentActor } from '../auth/current-actor.decorator.js';
import { EmptyBodyPipe } from '../errors/validation.js';

const MAX_SIZE = Number.MAX_SAFE_INTEGER;

/** `?size=`: one tree size (the latest checkpoint when absent). */
export class CheckpointQuery {
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_SIZE)
  size?: number;
}

/** `?seq=&size=`: an event and the tree size its inclusion is proven in. */
export class InclusionQuery {
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_SIZE)
  seq: number;

  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_SIZE)
  size: number;
}

/** `?from=&to=`: two tree sizes, from ≤ to. */
export class ConsistencyQuery {
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_SIZE)
  from: number;

  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_SIZE)
  to: number;
}

function requireAuditorOrAdmin(actor: Actor): void {
  if (!actor.roles.includes('auditor') && !actor.roles.includes('admin')) {
    throw new DomainError(ErrorCode.FORBIDDEN, 'Auditors and admins only');
  }
}

/**
 * The audit log as a Merkle transparency log (issue 22): signed C2SP checkpoints of the tree, and inclusion and
 * consistency proofs against them (RFC 9162 §2.1.3, §2.1.4). Auditors and admins, like the rest of the trail.
 */
@Controller('api/audit')
export class TransparencyLogController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly dataSource: DataSource,
    private readonly connectors: ConnectorRegistry,
  ) {}

  /** The latest signed checkpoint, or the one of `size`, with its witnesses' cosignatures; and the log's vkeys. */
  @Get('checkpoint')
  @Header('Cache-Control', 'no-store')
  async checkpoint(@CurrentActor() actor: Actor, @Query() query: CheckpointQuery) {
    requireAuditorOrAdmin(actor);
    const found = await storedCheckpoint(this.dataSource, this.origin(), query.size);
    if (!found) {
      throw new DomainError(
        ErrorCode.NOT_FOUND,
        query.size === undefined
          ? 'No checkpoint has been signed yet'
          : `No checkpoint of size ${query.size}`,
      );
    }
    return { ...(await withCosignatures(this.dataSource, found)), vkeys: await this.vkeys() };
  }

  /** Integrates what the tree lacks and signs a checkpoint of it now (201; the same one if nothing moved). */
  @Post('checkpoints')
  @HttpCode(201)
  async issue(@CurrentActor() actor: Actor, @Body(EmptyBodyPipe) _body: unknown) {
    requireAuditorOrAdmin(actor);
    const issued = await issueCheckpoint(this.dataSource, this.connectors.signingKeys, this.origin());
    if (!issued) throw new DomainError(ErrorCode.NOT_FOUND, 'The audit log is empty: nothing to sign');
    return { ...issued, vkeys: await this.vkeys() };
  }

  /** The inclusion proof of event `seq` in the tree of `size`. */
  @Get('proofs/inclusion')
  async inclusion(@CurrentActor() actor: Actor, @Query() query: InclusionQuery) {
    requireAuditorOrAdmin(actor);
    await this.checkSize(query.size);
    if (query.seq > query.size) {
      throw new DomainError(
        ErrorCode.VALIDATION_FAILED,
        `Event ${query.seq} is not in a tree of ${query.size}`,
      );
    }
    return inclusionOf(this.dataSource, query.seq, query.size);
  }

  /** The consistency proof between the trees of `from` and `to`. */
  @Get('proofs/consistency')
  async consistency(@CurrentActor() actor: Actor, @Query() query: ConsistencyQuery) {
    requireAuditorOrAdmin(actor);
    if (query.from > query.to) {
      throw new DomainError(ErrorCode.VALIDATION_FAILED, 'from must not be after to');
    }
    await this.checkSize(query.to);
    return consistencyOf(this.dataSource, query.from, query.to);
  }

  private async checkSize(size: number): Promise<void> {
    const integrated = await integratedSize(this.dataSource);
    if (size > integrated) {
      throw new DomainError(
        ErrorCode.VALIDATION_FAILED,
        `The tree holds ${integrated} events; ask for a size up to that (or sign a new checkpoint)`,
      );
    }
  }

  private origin(): string {
    return logOriginOf(this.config.webauthn.origins);
  }

  /** The audit keys as C2SP vkeys under the log's origin (every key that signed or signs checkpoints). */
  private async vkeys(): Promise<string[]> {
    const jwks = await this.connectors.signingKeys.publicJwks('audit');
    return jwks.map((jwk) =>
      formatVkey(noteVerifier(this.origin(), ed25519PublicKey(Buffer.from(String(jwk.x), 'base64url')))),
    );
  }
}
