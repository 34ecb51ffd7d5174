import { createHash, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditAction } from '../../../libs/audit/audit-actions.js';
import { appendAuditEvent, SYSTEM_ACTOR } from '../../../libs/audit/audit-log.js';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { RateLimitStore, type WindowCount } from '../auth/rate-limit-store.js';

/** RFC 6749 §2.3.1 client credentials: Basic base64(urlencoded id ":" urlencoded secret); null if malformed. */
function parseBasic(authorization: string | undefined): { clientId: string; secret: string } | null {
  const match = /^Basic ([A-Za-z0-9+/]+={0,2})$/.exec(authorization ?? '');
  if (!match) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const separator = decoded.indexOf(':');
  if (separator < 0) return null;
  try {
    return {
      clientId: decodeURIComponent(decoded.slice(0, separator)),
      secret: decodeURIComponent(decoded.slice(separator + 1)),
    };
  } catch {
    return null;
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** One failure limit: the counter's name, its limit, and how the audit event names what it locked. */
interface FailureLimit {
  name: string;
  limit: number;
  subjectType: 'client-address' | 'introspection-client';
  subjectId: string;
}

/**
 * Authenticates introspection clients (HTTP Basic, INTROSPECTION_CLIENTS) and limits failed attempts per
 * client address and per configured client id (issue 12). Past the address limit everything from that
 * address, the right secret included, is 429 until the window ends, so guessing from there learns nothing.
 * Past a client id's limit only wrong secrets are 429: client ids are not secret, and anyone could otherwise
 * lock a resource server out; secrets of 32+ characters (libs/config) keep guessing infeasible. Failures are
 * counted INCR-then-compare, so concurrent guesses get exactly the limit evaluated; each lock is audited
 * once per window. An unknown client id counts against the address only, so garbage ids cannot fill Redis.
 */
@Injectable()
export class ClientAuthenticationService {
  private readonly logger = new Logger(ClientAuthenticationService.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly store: RateLimitStore,
    private readonly dataSource: DataSource,
  ) {}

  /** Resolves when `authorization` holds a configured client's credentials; throws 401 or 429 otherwise. */
  async authenticate(authorization: string | undefined, address: string | undefined): Promise<void> {
    const credentials = parseBasic(authorization);
    const expected = credentials ? this.config.introspectionClients.get(credentials.clientId) : undefined;
    const limits = this.limitsFor(
      address ?? 'unknown',
      expected === undefined ? null : credentials!.clientId,
    );
    await this.refuseLockedAddress(limits[0]);
    // Compare digests in constant time so neither the length nor the content of the secret leaks.
    if (
      credentials &&
      expected !== undefined &&
      timingSafeEqual(digest(credentials.secret), digest(expected))
    ) {
      return;
    }
    await this.countFailure(limits);
    throw new DomainError(
      ErrorCode.INVALID_CLIENT,
      'Introspection needs valid client credentials (HTTP Basic)',
    );
  }

  /** The address limit first, then the client id's when the id is configured. */
  private limitsFor(address: string, knownClientId: string | null): FailureLimit[] {
    const { failuresPerAddress, failuresPerClient } = this.config.introspectionLimit;
    const limits: FailureLimit[] = [
      {
        name: `introspection:address:${address}`,
        limit: failuresPerAddress,
        subjectType: 'client-address',
        subjectId: address,
      },
    ];
    if (knownClientId !== null) {
      limits.push({
        name: `introspection:client:${knownClientId}`,
        limit: failuresPerClient,
        subjectType: 'introspection-client',
        subjectId: knownClientId,
      });
    }
    return limits;
  }

  private async refuseLockedAddress(limit: FailureLimit): Promise<void> {
    const count = await this.store.peek(limit.name);
    if (count.count >= limit.limit) throw tooManyFailures([count]);
  }

  /** Counts a wrong secret: 429 when it is past a limit (it was not evaluated), otherwise the caller's 401. */
  private async countFailure(limits: FailureLimit[]): Promise<void> {
    const { windowSeconds } = this.config.introspectionLimit;
    const counts = await Promise.all(limits.map((limit) => this.store.hit(limit.name, windowSeconds)));
    const over: WindowCount[] = [];
    for (const [index, limit] of limits.entries()) {
      const counted = counts[index];
      if (counted.count > limit.limit) over.push(counted);
      // Exactly at the limit: this failure locks it. INCR hands each count out once, so once per window.
      else if (counted.count === limit.limit) await this.auditLock(limit, counted, windowSeconds);
    }
    if (over.length > 0) throw tooManyFailures(over);
  }

  private async auditLock(limit: FailureLimit, counted: WindowCount, windowSeconds: number): Promise<void> {
    this.logger.warn(
      `Introspection locked for ${limit.subjectType} ${limit.subjectId}: ${limit.limit} failed client authentications`,
    );
    await this.dataSource
      .transaction((manager) =>
        appendAuditEvent(manager, {
          actorId: SYSTEM_ACTOR,
          action: AuditAction.IntrospectionLocked,
          subjectType: limit.subjectType,
          subjectId: limit.subjectId,
          data: {
            alert: true,
            failures: counted.count,
            windowSeconds,
            retryAfterSeconds: counted.retryAfterSeconds,
          },
        }),
      )
      .catch((error: unknown) =>
        this.logger.error(
          `Introspection lock not audited: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
  }
}

function tooManyFailures(counts: WindowCount[]): DomainError {
  return new DomainError(ErrorCode.RATE_LIMITED, 'Too many failed introspection client authentications', {
    retryAfterSeconds: Math.max(...counts.map((count) => count.retryAfterSeconds)),
  });
}
