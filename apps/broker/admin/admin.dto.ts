import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsIn,
  IsOptional,
  IsString,
  Matches,
  MaxLength,
  ValidateNested,
} from 'class-validator';
import type { UserRole } from '../../../libs/db/index.js';
import { USERNAME_PATTERN } from '../../../libs/domain/policy.js';
import { StepUpDto } from '../auth/webauthn.dto.js';
import { IsPlainText } from '../errors/validation.js';

export class CreateInviteDto {
  @IsString()
  @Matches(USERNAME_PATTERN, { message: 'username must be lower-case letters, digits, . _ - (at most 64)' })
  username: string;

  @IsOptional()
  @IsString()
  @MaxLength(200)
  @IsPlainText()
  displayName?: string;

  @IsArray()
  @ArrayMaxSize(2)
  @IsIn(['admin', 'auditor'], { each: true })
  roles: UserRole[];

  @IsOptional()
  @ValidateNested()
  @Type(() => StepUpDto)
  stepUp?: StepUpDto;
}
