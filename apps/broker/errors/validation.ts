import { ValidationPipe, type ValidationError, type PipeTransform } from '@nestjs/common';
import { Matches } from 'class-validator';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';

function flatten(errors: ValidationError[], prefix = ''): Array<{ field: string; problems: string[] }> {
  return errors.flatMap((error) => {
    const field = prefix ? `${prefix}.${error.property}` : error.property;
    const own = error.constraints ? [{ field, problems: Object.values(error.constraints) }] : [];
    return [...own, ...flatten(error.children ?? [], field)];
  });
}

/** Edge validation: unknown fields are refused, types are converted, failures use the error envelope. */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    transform: true,
    exceptionFactory: (errors) => {
      const details = flatten(errors);
      const summary = details.map((detail) => `${detail.field}: ${detail.problems.join('; ')}`).join(' | ');
      return new DomainError(ErrorCode.VALIDATION_FAILED, `Invalid input: ${summary}`, details);
    },
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

// C0 controls other than tab, newline and carriage return (NUL cannot even be stored by PostgreSQL), and
// UTF-16 halves without their partner (not representable in UTF-8).
const UNSAFE_TEXT =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Free text a person typed: refuses control characters and malformed Unicode. */
export const IsPlainText = () =>
  Matches(new RegExp(`^(?:(?!${UNSAFE_TEXT.source}).)*$`, 'su'), {
    message: '$property contains control characters or malformed Unicode',
  });

/** An RFC 3339 date-time with an explicit offset, e.g. 2030-01-01T09:00:00Z. */
export const IsRfc3339DateTime = () =>
  Matches(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/, {
    message: '$property must be an RFC 3339 date-time such as 2030-01-01T09:00:00Z',
  });
