import { IsIn, IsObject, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { STEP_UP_ACTIONS, type StepUpAction } from '../../../libs/webauthn/step-up-binding.js';

export class StepUpChallengeDto {
  @IsIn(STEP_UP_ACTIONS as unknown as string[])
  action: StepUpAction;

  @IsString()
  @MaxLength(200)
  @Matches(/^[A-Za-z0-9._:-]+$/, { message: 'subjectId must be an id or a username' })
  subjectId: string;

  /** For actions that create or read by parameters: exactly the final call's body less `stepUp` (DESIGN §5). */
  @IsOptional()
  @IsObject()
  params?: Record<string, unknown>;
}
