import {
  Catch,
  HttpException,
  HttpStatus,
  Logger,
  type ArgumentsHost,
  type ExceptionFilter,
} from '@nestjs/common';
import type { Response } from 'express';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';

/** HTTP status of each domain error code. */
export const STATUS_OF: Readonly<Record<ErrorCode, number>> = {
  [ErrorCode.VALIDATION_FAILED]: 400,
  [ErrorCode.INVALID_ID]: 400,
  [ErrorCode.UNAUTHENTICATED]: 401,
  [ErrorCode.STEP_UP_REQUIRED]: 401,
  [ErrorCode.STEP_UP_INVALID]: 401,
  [ErrorCode.INVALID_CLIENT]: 401,
  [ErrorCode.SESSION_EXPIRED]: 401,
  [ErrorCode.WORKLOAD_TOKEN_INVALID]: 401,
  [ErrorCode.WEBAUTHN_MALFORMED]: 401,
  [ErrorCode.CEREMONY_EXPIRED]: 401,
  [ErrorCode.CHALLENGE_MISMATCH]: 401,
  [ErrorCode.ORIGIN_MISMATCH]: 401,
  [ErrorCode.RP_ID_MISMATCH]: 401,
  [ErrorCode.USER_PRESENCE_REQUIRED]: 401,
  [ErrorCode.USER_VERIFICATION_REQUIRED]: 401,
  [ErrorCode.SIGNATURE_INVALID]: 401,
  [ErrorCode.ATTESTATION_INVALID]: 401,
  [ErrorCode.UNKNOWN_CREDENTIAL]: 401,
  [ErrorCode.CREDENTIAL_NOT_YOURS]: 401,
  [ErrorCode.AUTHENTICATOR_DISABLED]: 401,
  [ErrorCode.SIGN_COUNT_REGRESSION]: 401,
  [ErrorCode.STEP_UP_EXPIRED]: 401,
  [ErrorCode.STEP_UP_REPLAYED]: 401,
  [ErrorCode.STEP_UP_ACTION_MISMATCH]: 401,
  [ErrorCode.STEP_UP_SUBJECT_MISMATCH]: 401,
  [ErrorCode.STEP_UP_SUBJECT_CHANGED]: 401,
  [ErrorCode.FORBIDDEN]: 403,
  [ErrorCode.WORKLOAD_FORBIDDEN]: 403,
  [ErrorCode.NOT_ELIGIBLE]: 403,
  [ErrorCode.SELF_APPROVAL]: 403,
  [ErrorCode.NOT_AN_APPROVER]: 403,
  [ErrorCode.NOT_REQUESTER]: 403,
  [ErrorCode.ORIGIN_NOT_ALLOWED]: 403,
  [ErrorCode.AUTHENTICATOR_NOT_ALLOWED]: 403,
  [ErrorCode.INVITE_SELF_APPROVAL]: 403,
  [ErrorCode.SECOND_ADMIN_TOO_RECENT]: 403,
  [ErrorCode.INVITE_APPROVER_NOT_INDEPENDENT]: 403,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.ENTITLEMENT_NOT_FOUND]: 404,
  [ErrorCode.REQUEST_NOT_FOUND]: 404,
  [ErrorCode.INVITE_NOT_FOUND]: 404,
  [ErrorCode.USER_NOT_FOUND]: 404,
  [ErrorCode.AUTHENTICATOR_NOT_FOUND]: 404,
  [ErrorCode.SESSION_NOT_FOUND]: 404,
  [ErrorCode.ALREADY_DECIDED]: 409,
  [ErrorCode.REQUEST_NOT_PENDING]: 409,
  [ErrorCode.GRANT_ALREADY_REVOKED]: 409,
  [ErrorCode.REQUEST_NOT_APPROVED]: 409,
  [ErrorCode.REQUEST_NOT_ACTIVE]: 409,
  [ErrorCode.REQUEST_FINISHED]: 409,
  [ErrorCode.NOT_YET_STARTED]: 409,
  [ErrorCode.ACTIVATION_WINDOW_PASSED]: 409,
  [ErrorCode.NOT_YET_DUE]: 409,
  [ErrorCode.REQUEST_EXPIRED]: 409,
  [ErrorCode.LAST_AUTHENTICATOR]: 409,
  [ErrorCode.AUTHENTICATOR_ALREADY_DISABLED]: 409,
  [ErrorCode.OPEN_REQUEST_EXISTS]: 409,
  [ErrorCode.TOO_MANY_OPEN_REQUESTS]: 409,
  [ErrorCode.ENTITLEMENT_LOCKED]: 409,
  [ErrorCode.NOT_EXTENDABLE]: 409,
  [ErrorCode.REVIEW_NOT_PENDING]: 409,
  [ErrorCode.USER_SUSPENDED]: 409,
  [ErrorCode.ROLES_MISMATCH]: 409,
  [ErrorCode.SIGN_COUNT_STALE]: 409,
  [ErrorCode.RECOVERY_NEEDS_SECOND_ADMIN]: 409,
  [ErrorCode.INVITE_NOT_PENDING]: 409,
  [ErrorCode.PASSKEY_KEPT_AFTER_RECOVERY]: 409,
  [ErrorCode.INVITE_USED]: 410,
  [ErrorCode.INVITE_EXPIRED]: 410,
  [ErrorCode.DURATION_TOO_LONG]: 422,
  [ErrorCode.JUSTIFICATION_REQUIRED]: 422,
  [ErrorCode.TICKET_REQUIRED]: 422,
  [ErrorCode.TICKET_INVALID]: 422,
  [ErrorCode.POLICY_INVALID]: 422,
  [ErrorCode.RATE_LIMITED]: 429,
  [ErrorCode.STEP_UP_LOCKED]: 429,
  [ErrorCode.REQUEST_RATE_LIMITED]: 429,
  [ErrorCode.DENIAL_COOLDOWN]: 429,
  [ErrorCode.LIVE_STREAMS_PER_USER]: 429,
  [ErrorCode.LIVE_STREAMS_FULL]: 429,
  [ErrorCode.NOT_SUPPORTED]: 501,
  [ErrorCode.CONNECTOR_FAILED]: 502,
  [ErrorCode.SERVICE_UNAVAILABLE]: 503,
  [ErrorCode.INTERNAL]: 500,
};

const CODE_OF_STATUS: Record<number, string> = {
  400: ErrorCode.VALIDATION_FAILED,
  401: ErrorCode.UNAUTHENTICATED,
  403: ErrorCode.FORBIDDEN,
  404: ErrorCode.NOT_FOUND,
  405: 'METHOD_NOT_ALLOWED',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: ErrorCode.RATE_LIMITED,
};

export interface ErrorEnvelope {
  error: { code: string; message: string; details?: unknown };
}

/** Client-caused errors raised below Nest (body-parser: malformed JSON, too large, bad charset). */
function isExposedClientError(error: unknown): error is { status: number; message: string } {
  if (typeof error !== 'object' || error === null) return false;
  const { status, expose } = error as { status?: unknown; expose?: unknown };
  return typeof status === 'number' && status >= 400 && status < 500 && expose === true;
}

/** When a refused client should try again, when the error tells; a guess of a minute when it does not. */
const DEFAULT_RETRY_AFTER_SECONDS = 60;

/**
 * The Retry-After (whole seconds, at least 1) of a 429, from its details: `retryAfterSeconds` (per-IP and
 * introspection limits, denial cool-down), `lockedUntil` (step-up lock) or the `windowSeconds` a rolling
 * limit spans (request rate), in that order.
 */
export function retryAfterSeconds(details: unknown, now = Date.now()): number {
  const given = (typeof details === 'object' && details !== null ? details : {}) as Record<string, unknown>;
  let seconds = DEFAULT_RETRY_AFTER_SECONDS;
  if (typeof given.retryAfterSeconds === 'number') seconds = given.retryAfterSeconds;
  else if (typeof given.lockedUntil === 'string' && !Number.isNaN(Date.parse(given.lockedUntil)))
    seconds = (Date.parse(given.lockedUntil) - now) / 1000;
  else if (typeof given.windowSeconds === 'number') seconds = given.windowSeconds;
  return Math.max(1, Math.ceil(seconds));
}

/** Socket-level failures (Node's errno codes) and PostgreSQL's connection and shutdown SQLSTATEs. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up or shutting down)
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  '53300', // too_many_connections
]);
/** TypeORM releases a transaction's query runner when its connection dies; the next query says so. */
const RELEASED_RUNNER = new Set([
  'QueryRunnerAlreadyReleasedError',
  'QueryRunnerProviderAlreadyReleasedError',
]);
/** What pg and ioredis say, without a code, when the server went away or cannot be reached. */
const UNAVAILABLE_MESSAGE =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection is closed|Stream isn't writeable|the database system is (starting up|shutting down)/i;

/**
 * Whether `error` (or what it wraps: TypeORM's driverError, a cause, an AggregateError's errors) says that
 * PostgreSQL or Redis cannot be reached: the client may try again, so it answers 503, not 500.
 */
export function isUnavailableError(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 4) return false;
  const { name, code, message, driverError, cause, errors } = error as Record<string, unknown>;
  if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
  if (typeof name === 'string' && RELEASED_RUNNER.has(name)) return true;
  if (typeof message === 'string' && UNAVAILABLE_MESSAGE.test(message)) return true;
  const wrapped = [driverError, cause, ...(Array.isArray(errors) ? errors : [])];
  return wrapped.some((inner) => isUnavailableError(inner, depth + 1));
}

/** How long a client should wait before retrying after a 503. */
const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

/** Every error leaves as `{ error: { code, message, details? } }` (DESIGN §10); never 500 for client input. */
@Catch()
export class ErrorEnvelopeFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    const [status, envelope] = this.toEnvelope(exception);
    // An outage answers every request with 503: one line each, not a stack trace each.
    if (status === 503) this.logger.warn(`503: ${exception instanceof Error ? exception.message : ''}`);
    else if (status >= 500)
      this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : exception);
    if (status === 429) response.setHeader('Retry-After', String(retryAfterSeconds(envelope.error.details)));
    if (status === 503) response.setHeader('Retry-After', String(UNAVAILABLE_RETRY_AFTER_SECONDS));
    if (status === 401) {
      const clientAuth = exception instanceof DomainError && exception.code === ErrorCode.INVALID_CLIENT;
      response.setHeader('WWW-Authenticate', clientAuth ? 'Basic realm="introspection"' : 'Passkey');
    }
    response.status(status).json(envelope);
  }

  private toEnvelope(exception: unknown): [number, ErrorEnvelope] {
    if (exception instanceof DomainError) {
      const error: ErrorEnvelope['error'] = { code: exception.code, message: exception.message };
      if (exception.details !== undefined) error.details = exception.details;
      return [STATUS_OF[exception.code], { error }];
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const body = exception.getResponse();
      const message =
        typeof body === 'object' && body !== null && 'message' in body
          ? String(body.message)
          : exception.message;
      return [status, { error: { code: CODE_OF_STATUS[status] ?? `HTTP_${status}`, message } }];
    }
    if (isExposedClientError(exception)) {
      const status = exception.status;
      return [
        status,
        { error: { code: CODE_OF_STATUS[status] ?? `HTTP_${status}`, message: exception.message } },
      ];
    }
    if (isUnavailableError(exception)) {
      const message = 'A backing service is unavailable; try again shortly';
      return [HttpStatus.SERVICE_UNAVAILABLE, { error: { code: ErrorCode.SERVICE_UNAVAILABLE, message } }];
    }
    return [
      HttpStatus.INTERNAL_SERVER_ERROR,
      { error: { code: ErrorCode.INTERNAL, message: 'Internal error' } },
    ];
  }
}
