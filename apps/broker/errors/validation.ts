import {
  ValidationPipe,
  type ArgumentMetadata,
  type PipeTransform,
  type ValidationError,
} from '@nestjs/common';
import { Matches, ValidateBy, type ValidationArguments } from 'class-validator';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import {
  unencodableCharacter,
  unsafeFreeTextCharacter,
  type FreeTextOptions,
} from '../../../libs/domain/free-text.js';

interface Issue {
  field: string;
  problems: string[];
}

// A refusal stays small whatever the body held (issue 12: 200 KB of unknown keys answered 1.6 MB).
const MAX_ISSUES = 20;
const MAX_ISSUES_IN_MESSAGE = 5;
const MAX_PROBLEMS_PER_FIELD = 3;
const MAX_FIELD_LENGTH = 80;
const MAX_PROBLEM_LENGTH = 160;

// eslint-disable-next-line no-control-regex -- replacing control characters is the point
const UNPRINTABLE = /[\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]|[\uD800-\uDFFF]/g;

/** Client text echoed in an error: cut short, and nothing in it that hides, reorders or cannot be encoded. */
function echo(text: string, maxLength: number): string {
  const short = text.length > maxLength ? `${text.slice(0, maxLength)}…` : text;
  return short.replace(UNPRINTABLE, '\uFFFD');
}

function flatten(errors: ValidationError[], prefix = ''): Issue[] {
  return errors.flatMap((error) => {
    const field = prefix ? `${prefix}.${error.property}` : error.property;
    const own = error.constraints ? [{ field, problems: Object.values(error.constraints) }] : [];
    return [...own, ...flatten(error.children ?? [], field)];
  });
}

/** The VALIDATION_FAILED error for `issues`: at most MAX_ISSUES in details, the rest counted in the message. */
export function validationFailed(issues: Issue[]): DomainError {
  const details = issues.slice(0, MAX_ISSUES).map((issue) => ({
    field: echo(issue.field, MAX_FIELD_LENGTH),
    problems: issue.problems
      .slice(0, MAX_PROBLEMS_PER_FIELD)
      .map((problem) => echo(problem, MAX_PROBLEM_LENGTH)),
  }));
  const summary = details
    .slice(0, MAX_ISSUES_IN_MESSAGE)
    .map((detail) => `${detail.field}: ${detail.problems.join('; ')}`)
    .join(' | ');
  const more = issues.length - MAX_ISSUES_IN_MESSAGE;
  const message = `Invalid input: ${summary}${more > 0 ? ` | and ${more} more problems` : ''}`;
  return new DomainError(ErrorCode.VALIDATION_FAILED, message, details);
}

/**
 * Where in a parsed body, query or path a string (or object key) holds NUL or a lone surrogate, which
 * nothing behind the edge can store, or a `__proto__` or `constructor` key sits; null if none. The WebAuthn
 * `response` objects are left to the ceremony, which audits and counts a malformed one as a failed attempt
 * (issue 12, finding 1).
 */
export function hostileField(value: unknown, path = ''): { field: string; problem: string } | null {
  const at = (key: string) => (path ? `${path}.${key}` : key);
  if (typeof value === 'string') {
    const problem = unencodableCharacter(value);
    return problem ? { field: path || 'body', problem: `contains ${problem}` } : null;
  }
  if (typeof value !== 'object' || value === null) return null;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const found = hostileField(value[index], at(String(index)));
      if (found) return found;
    }
    return null;
  }
  for (const [key, item] of Object.entries(value)) {
    const keyProblem = unencodableCharacter(key);
    if (keyProblem) return { field: path || 'body', problem: `has a key that contains ${keyProblem}` };
    // class-transformer drops these silently, so whitelisting never sees them: refused like unknown keys.
    if (key === '__proto__' || key === 'constructor')
      return { field: at(key), problem: 'is not an accepted field' };
    if (key === 'response' && (path === '' || path === 'stepUp')) continue;
    const found = hostileField(item, at(key));
    if (found) return found;
  }
  return null;
}

/**
 * Edge validation: strings nothing can store are refused anywhere in a body, query or path; then the DTO
 * rules, with unknown fields refused and types converted; failures use the error envelope.
 */
class EdgeValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' || metadata.type === 'query' || metadata.type === 'param') {
      const found = hostileField(value, metadata.type === 'param' ? (metadata.data ?? '') : '');
      if (found)
        throw validationFailed([{ field: found.field, problems: [`${found.field} ${found.problem}`] }]);
    }
    return super.transform(value, metadata);
  }
}

/** The global pipe of the broker (see EdgeValidationPipe). */
export function createValidationPipe(): ValidationPipe {
  return new EdgeValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    transform: true,
    exceptionFactory: (errors) => validationFailed(flatten(errors)),
  });
}

/** For routes that take no body fields: anything but `{}` (or no body) is refused, like an unknown field. */
export class EmptyBodyPipe implements PipeTransform<unknown, Record<string, never>> {
  transform(value: unknown): Record<string, never> {
    const empty =
      value === undefined ||
      (typeof value === 'object' &&
        value !== null &&
        !Array.isArray(value) &&
        Object.keys(value).length === 0);
    if (!empty) throw new DomainError(ErrorCode.VALIDATION_FAILED, 'This call takes no body fields');
    return {};
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Path ids are UUIDs; anything else is a 400 INVALID_ID before any lookup. */
export class UuidPipe implements PipeTransform<string, string> {
  transform(value: string): string {
    if (!UUID.test(value))
      throw new DomainError(ErrorCode.INVALID_ID, `"${value.slice(0, 64)}" is not a UUID`);
    return value.toLowerCase();
  }
}

/**
 * Free text one person types and another reads (justifications, reasons, comments, names): refuses control
 * and bidirectional-override characters and malformed Unicode (libs/domain/free-text), naming the field.
 */
export const IsFreeText = (options: FreeTextOptions) =>
  ValidateBy({
    name: 'isFreeText',
    validator: {
      validate: (value: unknown) =>
        typeof value === 'string' && unsafeFreeTextCharacter(value, options) === null,
      defaultMessage: (args?: ValidationArguments) => {
        const problem = typeof args?.value === 'string' ? unsafeFreeTextCharacter(args.value, options) : null;
        return `${args?.property ?? 'text'} must be plain text${problem ? `: it contains ${problem}` : ''}`;
      },
    },
  });

/** An RFC 3339 date-time with an explicit offset, e.g. 2030-01-01T09:00:00Z. */
export const IsRfc3339DateTime = () =>
  Matches(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/, {
    message: '$property must be an RFC 3339 date-time such as 2030-01-01T09:00:00Z',
  });
