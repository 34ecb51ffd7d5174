import { applyDecorators } from '@nestjs/common';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { Type } from 'class-transformer';
import {
  Equals,
  IsDefined,
  IsArray,
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  IsUUID,
  Matches,
  MaxLength,
  ValidateNested,
} from 'class-validator';
import type { StepUpProof } from '../../../libs/identity/step-up.service.js';

// Shapes of @simplewebauthn's JSON types (DESIGN §10), validated so malformed ceremonies are a 400, not a 500.
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const B64 = () => Matches(BASE64URL, { message: '$property must be base64url' });
const MAX_BLOB = 16_384;

class AssertionBodyDto {
  @IsString() @MaxLength(MAX_BLOB) @B64() clientDataJSON: string;
  @IsString() @MaxLength(MAX_BLOB) @B64() authenticatorData: string;
  @IsString() @MaxLength(MAX_BLOB) @B64() signature: string;
  @IsOptional() @IsString() @MaxLength(512) @B64() userHandle?: string;
}

class AttestationBodyDto {
  @IsString() @MaxLength(MAX_BLOB) @B64() clientDataJSON: string;
  @IsString() @MaxLength(MAX_BLOB) @B64() attestationObject: string;
  @IsOptional() @IsString() @MaxLength(MAX_BLOB) @B64() authenticatorData?: string;
  @IsOptional() @IsArray() @IsString({ each: true }) @MaxLength(32, { each: true }) transports?: string[];
  @IsOptional() @IsInt() publicKeyAlgorithm?: number;
  @IsOptional() @IsString() @MaxLength(MAX_BLOB) @B64() publicKey?: string;
}

/** AuthenticationResponseJSON. */
export class AuthenticationResponseDto implements AuthenticationResponseJSON {
  @IsString() @MaxLength(1024) @B64() id: string;
  @IsString() @MaxLength(1024) @B64() rawId: string;
  @Equals('public-key') type: 'public-key';
  @IsDefined() @IsObject() @ValidateNested() @Type(() => AssertionBodyDto) response: AssertionBodyDto;
  @IsObject() clientExtensionResults: Record<string, unknown>;
  @IsOptional() @IsIn(['platform', 'cross-platform']) authenticatorAttachment?: 'platform' | 'cross-platform';
}

/** RegistrationResponseJSON. */
export class RegistrationResponseDto implements RegistrationResponseJSON {
  @IsString() @MaxLength(1024) @B64() id: string;
  @IsString() @MaxLength(1024) @B64() rawId: string;
  @Equals('public-key') type: 'public-key';
  @IsDefined() @IsObject() @ValidateNested() @Type(() => AttestationBodyDto) response: AttestationBodyDto;
  @IsObject() clientExtensionResults: Record<string, unknown>;
  @IsOptional() @IsIn(['platform', 'cross-platform']) authenticatorAttachment?: 'platform' | 'cross-platform';
}

/** `"stepUp": { "challengeId", "response" }`, carried by every step-up-protected call. */
export class StepUpDto implements StepUpProof {
  @IsUUID() challengeId: string;
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => AuthenticationResponseDto)
  response: AuthenticationResponseDto;
}

const INVITE_TOKEN = /^[A-Za-z0-9_-]{43}$/;

export class EnrollOptionsDto {
  @IsString() @Matches(INVITE_TOKEN, { message: 'invite must be an invite token' }) invite: string;
}

export class EnrollVerifyDto {
  @IsString() @Matches(INVITE_TOKEN, { message: 'invite must be an invite token' }) invite: string;
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => RegistrationResponseDto)
  response: RegistrationResponseDto;
}

export class LoginVerifyDto {
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => AuthenticationResponseDto)
  response: AuthenticationResponseDto;
}

/**
 * The `stepUp` field of a protected call: absent (answered 401 STEP_UP_REQUIRED) or one StepUpDto object.
 * Anything else, `[]` included, is a 400 here, before it could be counted as a failed step-up.
 */
export const IsStepUp = () =>
  applyDecorators(
    IsOptional(),
    IsObject({ message: 'stepUp must be an object { challengeId, response }' }),
    ValidateNested(),
    Type(() => StepUpDto),
  );

/** A body whose only field is the step-up (activate, authenticator.add). */
export class StepUpOnlyDto {
  @IsStepUp() stepUp?: StepUpDto;
}
