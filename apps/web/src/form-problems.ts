// What went wrong with a filed request, in words, and which field of the form it concerns: the broker's
// codes and patterns are for programs; the person reads a sentence next to the field they must change.
import { ApiError, describeError, type Entitlement } from './api';
import { formatDuration } from './time';

export type RequestField =
  'entitlement' | 'minutes' | 'justification' | 'ticket' | 'sshPublicKey' | 'startAt';

export interface FormProblem {
  /** The field to change, or null for the form as a whole. */
  field: RequestField | null;
  message: string;
  /** A cool-down: when asking again is allowed, on the server's clock (epoch ms); shown counting down. */
  retryAt?: number;
}

/** The request body's names for the form's fields (VALIDATION_FAILED details name body fields). */
const FIELD_OF_BODY: Record<string, RequestField> = {
  entitlementId: 'entitlement',
  durationSeconds: 'minutes',
  justification: 'justification',
  ticket: 'ticket',
  sshPublicKey: 'sshPublicKey',
  notBefore: 'startAt',
};

/** What to do about a malformed field, in words (class-validator's sentences name body fields). */
const FIX_OF_FIELD: Record<RequestField, string> = {
  entitlement: 'Choose one of the entitlements listed.',
  minutes: 'Give a whole number of minutes, at least 1.',
  justification: 'Keep the justification to plain text of at most 2000 characters.',
  ticket: 'Keep the ticket to one line of at most 200 characters.',
  sshPublicKey: 'Paste one OpenSSH public key line, like “ssh-ed25519 AAAA… you@laptop”.',
  startAt: 'Choose a start in the future.',
};

type Described = Pick<Entitlement, 'title' | 'maxDurationSeconds' | 'requires'>;

function numberIn(details: unknown, key: string): number | null {
  const value = (details as Record<string, unknown> | null | undefined)?.[key];
  return typeof value === 'number' ? value : null;
}

/** The first field a VALIDATION_FAILED names that the form has, with what to do about it. */
function validationProblem(error: ApiError): FormProblem {
  const details = Array.isArray(error.details) ? (error.details as Array<{ field?: unknown }>) : [];
  for (const detail of details) {
    const field = typeof detail.field === 'string' ? FIELD_OF_BODY[detail.field] : undefined;
    if (field) return { field, message: FIX_OF_FIELD[field] };
  }
  return { field: null, message: 'The broker could not read this request; check the fields and try again.' };
}

/** The problem to show for a refused request for `entitlement`; `now` is the server's clock (epoch ms). */
export function requestProblem(error: unknown, entitlement: Described, now: number): FormProblem {
  if (!(error instanceof ApiError)) return { field: null, message: describeError(error) };
  const { title, requires } = entitlement;
  const hint = requires.ticketHint;
  switch (error.code) {
    case 'DURATION_TOO_LONG':
      return {
        field: 'minutes',
        message: `${title} lasts at most ${formatDuration(entitlement.maxDurationSeconds)}.`,
      };
    case 'JUSTIFICATION_REQUIRED':
      return { field: 'justification', message: 'Say why you need this access.' };
    case 'TICKET_REQUIRED':
      return { field: 'ticket', message: `Give the ticket this access is for${hint ? `: ${hint}` : ''}.` };
    case 'TICKET_INVALID':
      return {
        field: 'ticket',
        message: hint
          ? `This is not ${hint}.`
          : `This is not a ticket reference of the kind ${title} asks for.`,
      };
    case 'OPEN_REQUEST_EXISTS':
      return { field: 'entitlement', message: `You already hold or wait for ${title}: see My requests.` };
    case 'DENIAL_COOLDOWN': {
      const seconds = numberIn(error.details, 'retryAfterSeconds') ?? 0;
      return {
        field: 'entitlement',
        message: `Your last request for ${title} was denied. You may ask again in`,
        retryAt: now + seconds * 1000,
      };
    }
    case 'VALIDATION_FAILED':
      return validationProblem(error);
    default:
      return { field: null, message: describeError(error) };
  }
}
