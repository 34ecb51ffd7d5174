import { describe, expect, it } from '@jest/globals';
import { csvRecord, CsvReader, CsvSyntaxError } from './csv.js';

function parseAll(text: string, chunkSize = text.length || 1): string[][] {
  const reader = new CsvReader();
  const records: string[][] = [];
  for (let start = 0; start < text.length; start += chunkSize)
    records.push(...reader.push(text.slice(start, start + chunkSize)));
  return [...records, ...reader.end()];
}

describe('csv', () => {
  it('quotes only fields with a comma, quote, CR or LF, doubling quotes, CRLF after each record', () => {
    expect(csvRecord(['plain', 'a,b', 'say "hi"', 'two\nlines', 'cr\rhere', ''])).toBe(
      'plain,"a,b","say ""hi""","two\nlines","cr\rhere",\r\n',
    );
  });

  it('reads back what it writes, whatever the chunk boundaries', () => {
    const rows = [
      ['seq', 'data'],
      ['1', '{"comment":"a, \\"b\\"","x":1}'],
      ['2', 'line one\r\nline two'],
      ['', '"'],
      ['""', ',,'],
    ];
    const text = rows.map(csvRecord).join('');
    for (const chunkSize of [1, 2, 3, 7, text.length]) expect(parseAll(text, chunkSize)).toEqual(rows);
  });

  it('accepts LF line ends, a missing final line end, and skips blank lines', () => {
    expect(parseAll('a,b\n\n"c\nd",e')).toEqual([
      ['a', 'b'],
      ['c\nd', 'e'],
    ]);
  });

  it('refuses a quote inside an unquoted field, text after a closing quote, and an unclosed quote', () => {
    expect(() => parseAll('ab"c,d\r\n')).toThrow(CsvSyntaxError);
    expect(() => parseAll('"ab"c,d\r\n')).toThrow('text after the closing quote');
    expect(() => parseAll('a,"never closed\r\n')).toThrow('never closed');
  });
});
