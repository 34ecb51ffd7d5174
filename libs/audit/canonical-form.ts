// The verifier's rule for the JSON text in an export: each event and the manifest must be byte for byte the
// JCS (RFC 8785) text its hash or signature covers. Otherwise two readers can see two different events in
// the same bytes: JSON.parse keeps the last of two `actorId` keys, grep and most eyes see the first.
import { jcs } from './jcs.js';

/** The parsed value (undefined when the text is not JSON) and why it is refused, or null when it is not. */
export interface CanonicalRead {
  value: unknown;
  /** Reads after "line N ": "is not JSON", "holds a duplicate key", or NOT_CANONICAL. */
  problem: string | null;
}

export const NOT_CANONICAL =
  'is not in canonical form (JCS): keys out of order, whitespace, or escapes and numbers written another way';

/**
 * Parses JSON text that must equal canonicalJson(JSON.parse(text)). That comparison alone also refuses a
 * duplicate key at any depth (the re-serialised value holds only one of them); duplicates are counted, for
 * text that is not canonical, only so that the reason names them.
 */
export function readCanonicalJson(text: string): CanonicalRead {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    return { value: undefined, problem: 'is not JSON' };
  }
  let canonical: string | undefined;
  try {
    canonical = jcs(value);
  } catch {
    // A lone surrogate has no canonical form (and could not have been hashed).
    canonical = undefined;
  }
  if (canonical === text) return { value, problem: null };
  return { value, problem: holdsDuplicateKey(text, value) ? 'holds a duplicate key' : NOT_CANONICAL };
}

/**
 * Whether JSON text, which JSON.parse read as `value`, names one key twice in an object at any depth. In valid
 * JSON every `:` outside a string separates a member's name from its value, so the text holds more members
 * than the parsed value exactly when a key repeats. For files whose layout is not ours to fix (a bundle as
 * served); no JSON parser among the dependencies reports duplicates, and this count is exact.
 */
export function holdsDuplicateKey(text: string, value: unknown): boolean {
  return membersInText(text) !== membersInValue(value);
}

function membersInText(text: string): number {
  let members = 0;
  let inString = false;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (inString) {
      if (code === 0x5c)
        index++; // a backslash: the next character is escaped, even a quote
      else if (code === 0x22) inString = false;
    } else if (code === 0x22) inString = true;
    else if (code === 0x3a) members++;
  }
  return members;
}

/** Members of every object in a parsed JSON value; a loop, not recursion, so deep nesting cannot overflow. */
function membersInValue(value: unknown): number {
  let members = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const item = pending.pop();
    if (typeof item !== 'object' || item === null) continue;
    const children = Array.isArray(item) ? item : Object.values(item);
    if (!Array.isArray(item)) members += children.length;
    for (const child of children) pending.push(child);
  }
  return members;
}
