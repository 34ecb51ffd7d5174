import { describe, expect, it } from '@jest/globals';
import { unencodableCharacter, unsafeFreeTextCharacter } from './free-text.js';

const SINGLE = { multiLine: false };
const MULTI = { multiLine: true };

describe('unencodableCharacter', () => {
  it('accepts any well-formed text, astral characters included', () => {
    expect(unencodableCharacter('')).toBeNull();
    expect(unencodableCharacter('Müller 東京 😀 \u202E\u0085\n')).toBeNull();
  });

  it('names NUL and each kind of lone surrogate', () => {
    expect(unencodableCharacter('a\u0000b')).toBe('NUL (U+0000)');
    expect(unencodableCharacter('a\uD800')).toBe('a lone surrogate (U+D800)');
    expect(unencodableCharacter('\uD800a')).toBe('a lone surrogate (U+D800)');
    expect(unencodableCharacter('a\uDFFFb')).toBe('a lone surrogate (U+DFFF)');
    expect(unencodableCharacter('\uDE00\uD83D')).toBe('a lone surrogate (U+DE00)');
  });
});

describe('unsafeFreeTextCharacter', () => {
  it('accepts text in any script and, in multi-line text, tabs and line breaks', () => {
    for (const text of ['plain', 'שלום עולם', 'عربى', '😀👍🏽', 'a–b “c” ✓', 'x\u00A0y', 'e\u0301'])
      expect(unsafeFreeTextCharacter(text, SINGLE)).toBeNull();
    expect(unsafeFreeTextCharacter('line 1\r\n\tline 2\n', MULTI)).toBeNull();
  });

  it('refuses tabs and line breaks in single-line text', () => {
    for (const text of ['a\nb', 'a\rb', 'a\tb'])
      expect(unsafeFreeTextCharacter(text, SINGLE)).toMatch(/single-line/);
  });

  it('refuses every other C0 control, DEL and every C1 control, wherever they sit', () => {
    for (let unit = 0; unit <= 0x9f; unit++) {
      const control = unit < 0x20 || unit >= 0x7f;
      if (!control || [0x09, 0x0a, 0x0d].includes(unit)) continue;
      const text = `x${String.fromCharCode(unit)}y`;
      expect({ unit, refused: unsafeFreeTextCharacter(text, MULTI) !== null }).toEqual({
        unit,
        refused: true,
      });
    }
  });

  it('refuses the bidi embeddings, overrides and isolates, not the marks next to them', () => {
    for (const unit of [0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069])
      expect(unsafeFreeTextCharacter(`a${String.fromCharCode(unit)}b`, MULTI)).toMatch(/bidirectional/);
    for (const unit of [0x2029, 0x202f, 0x2065, 0x206a])
      expect(unsafeFreeTextCharacter(`a${String.fromCharCode(unit)}b`, MULTI)).toBeNull();
  });

  it('refuses what cannot be stored at all', () => {
    expect(unsafeFreeTextCharacter('a\u0000', MULTI)).toBe('NUL (U+0000)');
    expect(unsafeFreeTextCharacter('a\uD800', MULTI)).toMatch(/lone surrogate/);
  });
});
