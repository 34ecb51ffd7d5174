import { IsStepUp, StepUpDto } from '../auth/webauthn.dto.js';
import { Type } from 'class-transformer';
import {
  IsDateString,
  IsEnum,
  IsInt,
  IsNotEmpty,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import type { ElevationRequestEntity } from '../../../libs/db/index.js';
import type { RequestViewFacts } from '../../../libs/elevation/request-queries.js';
import { publicRevokeError } from '../../../libs/domain/grant-state.js';
import { USERNAME_PATTERN } from '../../../libs/domain/policy.js';
import { RequestState } from '../../../libs/domain/request-state.js';
import { IsFreeText, IsRfc3339DateTime } from '../errors/validation.js';
import { PageQuery } from '../page-query.dto.js';

const ONE_WEEK_SECONDS = 7 * 24 * 3600;

/** How long and why: what a request and an extension of one both state (POST /api/requests/:id/extend). */
export class ExtendRequestDto {
  @IsInt()
  @Min(1)
  @Max(ONE_WEEK_SECONDS)
  durationSeconds: number;

  /** Required or not by the entitlement's `requires.justification` (422 JUSTIFICATION_REQUIRED). */
  @IsOptional()
  @IsString()
  @MaxLength(2000)
  @IsFreeText({ multiLine: true })
  justification?: string;

  @IsOptional()
  @IsString()
  @MaxLength(200)
  @IsFreeText({ multiLine: false })
  ticket?: string;
}

export class CreateRequestDto extends ExtendRequestDto {
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9-]{0,63}$/, { message: 'entitlementId must be an entitlement id' })
  entitlementId: string;

  @IsOptional()
  @IsRfc3339DateTime()
  @IsDateString({ strict: true })
  notBefore?: string;

  /** For ssh entitlements: the OpenSSH public key to certify (one line, e.g. `ssh-ed25519 AAAA… me@laptop`). */
  @IsOptional()
  @IsString()
  @MaxLength(16_384)
  @Matches(/^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/=]+( [^\r\n]*)?$/, {
    message: 'sshPublicKey must be one OpenSSH public key line',
  })
  // The comment is shown to approvers: no bidi or C1 controls in it.
  @IsFreeText({ multiLine: false })
  sshPublicKey?: string;

  /** Break-glass only: a `break-glass` step-up whose subject is the entitlement id and params this body less stepUp. */
  @IsStepUp()
  stepUp?: StepUpDto;
}

export class CancelDto {
  @IsOptional()
  @IsString()
  @MaxLength(2000)
  @IsFreeText({ multiLine: true })
  reason?: string;
}

export class RevokeDto {
  /** A `revoke` step-up for this request. */
  @IsStepUp()
  stepUp?: StepUpDto;

  @IsString()
  @IsNotEmpty()
  @MaxLength(2000)
  @IsFreeText({ multiLine: true })
  reason: string;
}

export class ReviewDto {
  @IsString()
  @IsNotEmpty()
  @MaxLength(2000)
  @IsFreeText({ multiLine: true })
  comment: string;
}

export class ApproveDto {
  /** An `approve` step-up for this request; missing → 401 STEP_UP_REQUIRED. */
  @IsStepUp()
  stepUp?: StepUpDto;

  @IsOptional()
  @IsString()
  @MaxLength(2000)
  @IsFreeText({ multiLine: true })
  comment?: string;
}

export class DenyDto {
  /** A `deny` step-up for this request. */
  @IsStepUp()
  stepUp?: StepUpDto;

  @IsString()
  @IsNotEmpty()
  @MaxLength(2000)
  @IsFreeText({ multiLine: true })
  reason: string;
}

/** The page size of a list when the query sets no `limit`. */
export const DEFAULT_PAGE_SIZE = 50;

/** GET /api/requests/:id/wait: how long to hold the call, and the state to wait out. */
export class WaitQuery {
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'timeout must be a whole number of seconds' })
  @Min(1, { message: 'timeout must be 1 to 60 seconds' })
  @Max(60, { message: 'timeout must be 1 to 60 seconds' })
  timeout?: number;

  @IsOptional()
  @IsEnum(RequestState)
  state?: RequestState;
}

/** A person's username, or a workload's `workload:<id>`. */
const REQUESTER_PATTERN = new RegExp(`^(?:workload:)?${USERNAME_PATTERN.source.slice(1)}`);

export class ListRequestsQuery extends PageQuery {
  @IsOptional()
  @IsEnum(RequestState)
  state?: RequestState;

  /** Narrows what the caller may see to one entitlement. */
  @IsOptional()
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9-]{0,63}$/, { message: 'entitlementId must be an entitlement id' })
  entitlementId?: string;

  /** Narrows what the caller may see to one requester, by username (`workload:<id>` for a workload). */
  @IsOptional()
  @IsString()
  @Matches(REQUESTER_PATTERN, { message: 'requester must be a username' })
  requester?: string;
}

const iso = (date: Date | null) => date?.toISOString() ?? null;

/**
 * The request as clients see it (DESIGN §10): ISO times, `notAfter` once active, and `grant` once minted:
 * the credential's state as the connector last confirmed it (REVOKING until it confirms a revoke).
 */
export function toRequestView(request: ElevationRequestEntity, { usernames, grants }: RequestViewFacts) {
  const grant = grants.get(request.id);
  return {
    id: request.id,
    requesterId: request.requesterId,
    requester: usernames.get(request.requesterId) ?? null,
    /** 'workload' when a pipeline or agent filed it (issue 21): approvers see who is accountable for it. */
    requesterKind: request.requesterWorkload ? ('workload' as const) : ('person' as const),
    workload: request.requesterWorkload
      ? {
          id: request.requesterWorkload.id,
          title: request.requesterWorkload.title,
          ownerGroup: request.requesterWorkload.ownerGroup,
          issuer: request.requesterWorkload.issuer,
          subject: request.requesterWorkload.subject,
        }
      : null,
    entitlementId: request.entitlementId,
    policyHash: request.policyHash,
    scope: request.scope,
    durationSeconds: request.durationSeconds,
    justification: request.justification,
    ticket: request.ticket,
    notBefore: iso(request.notBefore),
    breakGlass: request.breakGlass,
    extendsRequestId: request.extendsRequestId,
    sshPublicKey: request.sshPublicKey,
    approvalsRequired: request.approvalsRequired,
    state: request.state,
    createdAt: iso(request.createdAt),
    pendingUntil: iso(request.pendingUntil),
    decidedAt: iso(request.decidedAt),
    activateBy: iso(request.activateBy),
    activatedAt: iso(request.activatedAt),
    notAfter: iso(request.endsAt),
    endedAt: iso(request.endedAt),
    endReason: request.endReason,
    grant: grant
      ? {
          state: grant.state,
          revokeAttempts: grant.revokeAttempts,
          nextRetryAt: iso(grant.nextRetryAt),
          revokedAt: iso(grant.revokedAt),
          // Worded for users; the raw error stays in the logs and the admin's revocation list.
          lastError: publicRevokeError(grant.lastError),
        }
      : null,
    ...(request.breakGlass
      ? {
          reviewDueAt: iso(request.reviewDueAt),
          reviewedAt: iso(request.reviewedAt),
          reviewComment: request.reviewComment,
        }
      : {}),
  };
}
