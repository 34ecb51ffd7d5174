import { IsBoolean, IsEmail, IsIn, IsOptional, MaxLength, ValidateIf } from 'class-validator';
import { IsStepUp, StepUpDto } from '../auth/webauthn.dto.js';
import { PageQuery } from '../page-query.dto.js';

/** `{ email, stepUp }`: a `user.email` step-up whose subject is the username and params `{ email }`. */
export class SetEmailDto {
  /** null clears the address. */
  @ValidateIf((_object, value) => value !== null)
  @IsEmail({ allow_display_name: false, allow_utf8_local_part: false, require_tld: false })
  @MaxLength(254)
  email: string | null;

  @IsStepUp()
  stepUp?: StepUpDto;
}

/** The person's channel preferences. */
export class SetPreferencesDto {
  /** Receive e-mail (security notices are sent whatever this says). */
  @IsBoolean()
  email: boolean;
}

export const DELIVERY_STATUSES = ['pending', 'held', 'sent', 'failed', 'digested', 'dropped'] as const;

export class ListDeliveriesQuery extends PageQuery {
  @IsOptional()
  @IsIn(DELIVERY_STATUSES)
  status?: (typeof DELIVERY_STATUSES)[number];
}
