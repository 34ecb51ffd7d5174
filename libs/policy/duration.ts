import { DomainError, ErrorCode } from '../domain/errors.js';

const DURATION_PATTERN = /^(?:(\d{1,9})d)?(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?$/;

/** "90s", "15m", "1h", "1h30m", "2d" -> seconds; units in the order d, h, m, s, each at most once; > 0. */
export function parseDuration(text: string): number {
  const seconds = durationSeconds(text);
  if (seconds === null) throw new DomainError(ErrorCode.VALIDATION_FAILED, notADuration(text));
  return seconds;
}

/** The inverse of parseDuration, for messages: 5400 -> "1h30m". */
export function formatDuration(seconds: number): string {
  const units: [string, number][] = [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ];
  let rest = seconds;
  let text = '';
  for (const [unit, size] of units) {
    const count = Math.floor(rest / size);
    if (count > 0) text += `${count}${unit}`;
    rest -= count * size;
  }
  return text || '0s';
}

/** The seconds of a duration string, or null when `text` is not one (for the schema, which does not throw). */
export function durationSeconds(text: unknown): number | null {
  if (typeof text !== 'string' || text === '') return null;
  const match = DURATION_PATTERN.exec(text);
  if (!match) return null;
  const [days, hours, minutes, seconds] = match.slice(1).map((part) => Number(part ?? 0));
  const total = days * 86_400 + hours * 3_600 + minutes * 60 + seconds;
  return Number.isSafeInteger(total) && total > 0 ? total : null;
}

/** Why `text` is not a duration, as a message. */
export function notADuration(text: string): string {
  return `${JSON.stringify(text)} is not a positive duration like "90s", "15m", "1h30m" or "2d"`;
}
