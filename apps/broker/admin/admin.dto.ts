import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import type { UserRole } from '../../../libs/db/index.js';
import { GrantState } from '../../../libs/domain/grant-state.js';
import { USERNAME_PATTERN } from '../../../libs/domain/policy.js';
import { IsStepUp, StepUpDto } from '../auth/webauthn.dto.js';
import { IsFreeText } from '../errors/validation.js';
import { PageQuery } from '../page-query.dto.js';

export class CreateInviteDto {
  @IsString()
  @Matches(USERNAME_PATTERN, { message: 'username must be lower-case letters, digits, . _ - (at most 64)' })
  username: string;

  @IsOptional()
  @IsString()
  @MaxLength(200)
  @IsFreeText({ multiLine: false })
  displayName?: string;

  @IsArray()
  @ArrayMaxSize(2)
  @IsIn(['admin', 'auditor'], { each: true })
  roles: UserRole[];

  @IsStepUp()
  stepUp?: StepUpDto;
}

export class SetUserStatusDto {
  @IsIn(['active', 'suspended'])
  status: 'active' | 'suspended';

  @IsString()
  @MaxLength(2000)
  @IsFreeText({ multiLine: true })
  @Matches(/\S/, { message: 'reason must not be blank' })
  reason: string;

  /** A `user.suspend` step-up: subject the username, params this body less stepUp. */
  @IsStepUp()
  stepUp?: StepUpDto;
}

export class DisableAuthenticatorDto {
  /** Why (a lost laptop, a stolen key): kept with the passkey and in the audit event. */
  @IsString()
  @MaxLength(500)
  @IsFreeText({ multiLine: false })
  @Matches(/\S/, { message: 'reason must not be blank' })
  reason: string;

  /** An `authenticator.disable` step-up: subject the passkey id, params `{ reason }`. */
  @IsStepUp()
  stepUp?: StepUpDto;
}

export class ApproveInviteDto {
  /** An `invite.approve` step-up: subject the invite id, params `{}`. */
  @IsStepUp()
  stepUp?: StepUpDto;
}

export class ListInvitesQuery {
  @IsOptional()
  @IsIn(['pending-approval', 'open'])
  state?: 'pending-approval' | 'open';
}

export class RetryRevocationDto {
  /** A `grant.retry-revoke` step-up: subject the grant id, params `{}`. */
  @IsStepUp()
  stepUp?: StepUpDto;
}

export class PolicyReloadDto {
  /** A `policy.reload` step-up: subject `policy`, params `{}`. */
  @IsStepUp()
  stepUp?: StepUpDto;
}

export class ListGrantsQuery extends PageQuery {
  @IsOptional()
  @IsIn(Object.values(GrantState))
  state?: GrantState;
}

export class ListUsersQuery {
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  limit?: number;

  /** The last username of the previous page. */
  @IsOptional()
  @IsString()
  @Matches(USERNAME_PATTERN, { message: 'cursor must be a username' })
  cursor?: string;
}
