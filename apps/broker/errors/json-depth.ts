/** Deeper JSON than any of our bodies needs; class-transformer recurses per level, so it must be bounded. */
export const MAX_JSON_DEPTH = 32;

/**
 * True when the raw JSON nests objects or arrays deeper than `limit`. A linear scan outside strings, run by
 * the body parser before JSON.parse, so a 256 KB body of `[[[[…` is a 400 instead of a stack overflow.
 */
export function jsonTooDeep(raw: Buffer, limit = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let index = 0; index < raw.length; index++) {
    const byte = raw[index];
    if (inString) {
      if (byte === 0x5c)
        index++; // backslash: skip the escaped character
      else if (byte === 0x22) inString = false;
      continue;
    }
    if (byte === 0x22) inString = true;
    else if (byte === 0x5b || byte === 0x7b) {
      depth++;
      if (depth > limit) return true;
    } else if (byte === 0x5d || byte === 0x7d) depth--;
  }
  return false;
}
