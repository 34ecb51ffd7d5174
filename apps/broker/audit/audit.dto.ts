import { Type } from 'class-transformer';
import {
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  IsUUID,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import { EXPORT_FORMATS, type ExportFormat } from '../../../libs/audit/manifest.js';
import { IsStepUp, StepUpDto } from '../auth/webauthn.dto.js';
import { IsRfc3339DateTime } from '../errors/validation.js';

/** The filters of DESIGN §9, shared by the event list (query string) and the export (body). */
export class AuditFiltersDto {
  /** Inclusive lower bound on the event time. */
  @IsOptional()
  @IsRfc3339DateTime()
  from?: string;

  /** Exclusive upper bound on the event time. */
  @IsOptional()
  @IsRfc3339DateTime()
  to?: string;

  /** A user id, or `system` / `cli` for events without a person. */
  @IsOptional()
  @IsString()
  @MaxLength(200)
  @Matches(/^[A-Za-z0-9._:-]+$/, { message: 'actorId must be a user id or an actor name' })
  actorId?: string;

  @IsOptional()
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9-]{0,63}$/, { message: 'entitlementId must be an entitlement id' })
  entitlementId?: string;

  @IsOptional()
  @IsUUID()
  requestId?: string;

  /** An event action such as `approval.recorded`. */
  @IsOptional()
  @IsString()
  @MaxLength(100)
  @Matches(/^[a-z0-9][a-z0-9._-]*$/, { message: 'action must be an event action such as approval.recorded' })
  action?: string;
}

/** `GET /api/audit/events?…filters&limit=&cursor=`; the cursor is the seq of the last event of the previous page. */
export class ListAuditEventsQuery extends AuditFiltersDto {
  /** A username, resolved to its user id (the answer's `actorId`); not together with actorId. */
  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z0-9._@-]{1,100}$/, { message: 'actor must be a username' })
  actor?: string;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  limit?: number;

  @IsOptional()
  @Matches(/^(0|[1-9][0-9]{0,14})$/, { message: 'cursor must be the seq of the last event of a page' })
  cursor?: string;
}

/** `POST /api/audit/export { format, filters?, stepUp }`; the step-up is `audit.export`, params this body less stepUp. */
export class AuditExportDto {
  @IsIn(EXPORT_FORMATS as unknown as string[], {
    message: `format must be one of: ${EXPORT_FORMATS.join(', ')}`,
  })
  format: ExportFormat;

  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => AuditFiltersDto)
  filters?: AuditFiltersDto;

  @IsStepUp()
  stepUp?: StepUpDto;
}
