import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { subjectDigest } from '../../../libs/webauthn/step-up-binding.js';

/**
 * The digest of a parameter-bound call: its body less `stepUp`, as plain JSON (DESIGN §5: what was signed
 * is what runs). The JSON round trip drops absent optional fields exactly as the client's JSON did.
 */
export function paramsDigest(params: Record<string, unknown>): string {
  const { stepUp: _stepUp, ...rest } = params;
  try {
    return subjectDigest(JSON.parse(JSON.stringify(rest)) as unknown);
  } catch (error) {
    throw new DomainError(
      ErrorCode.VALIDATION_FAILED,
      `Parameters have no canonical form: ${(error as Error).message}`,
    );
  }
}
