/**
 * What text typed by one person may hold before it is stored and shown to another (issue 12): no control
 * characters that hide or reorder what the reader sees, and nothing PostgreSQL or UTF-8 cannot hold.
 */

/** Whether tab, line feed and carriage return are allowed (a justification or a comment, not a name). */
export interface FreeTextOptions {
  multiLine: boolean;
}

const isHighSurrogate = (unit: number) => unit >= 0xd800 && unit <= 0xdbff;
const isLowSurrogate = (unit: number) => unit >= 0xdc00 && unit <= 0xdfff;

/** U+0000 (PostgreSQL text cannot hold it) or a UTF-16 half without its partner (UTF-8 cannot encode it). */
export function unencodableCharacter(text: string): string | null {
  for (let index = 0; index < text.length; index++) {
    const unit = text.charCodeAt(index);
    if (unit === 0) return 'NUL (U+0000)';
    if (isHighSurrogate(unit)) {
      if (isLowSurrogate(text.charCodeAt(index + 1))) index++;
      else return `a lone surrogate (${codePoint(unit)})`;
    } else if (isLowSurrogate(unit)) return `a lone surrogate (${codePoint(unit)})`;
  }
  return null;
}

/**
 * Why `text` may not be stored as free text, or null when it may. Refused: C0 controls (tab, line feed and
 * carriage return only in multi-line text), DEL and the C1 controls U+0080–U+009F (terminal escapes), the
 * bidirectional embeddings, overrides and isolates U+202A–U+202E and U+2066–U+2069 (they let a requester
 * show an approver reversed text: "Trojan Source"), and whatever `unencodableCharacter` refuses.
 */
export function unsafeFreeTextCharacter(text: string, options: FreeTextOptions): string | null {
  const unencodable = unencodableCharacter(text);
  if (unencodable) return unencodable;
  for (let index = 0; index < text.length; index++) {
    const unit = text.charCodeAt(index);
    if (unit < 0x20) {
      if (options.multiLine && (unit === 0x09 || unit === 0x0a || unit === 0x0d)) continue;
      return unit === 0x0a || unit === 0x0d || unit === 0x09
        ? `a line break or tab (${codePoint(unit)}), which this single-line field does not take`
        : `a control character (${codePoint(unit)})`;
    }
    if (unit >= 0x7f && unit <= 0x9f) return `a control character (${codePoint(unit)})`;
    if ((unit >= 0x202a && unit <= 0x202e) || (unit >= 0x2066 && unit <= 0x2069))
      return `a bidirectional control character (${codePoint(unit)})`;
  }
  return null;
}

function codePoint(unit: number): string {
  return `U+${unit.toString(16).toUpperCase().padStart(4, '0')}`;
}
