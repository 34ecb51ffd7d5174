// RFC 4180 writing and reading, kept to what the audit export needs. No CSV package is installed, and the
// verifier must read records incrementally (a quoted field may span chunks and lines), so it is written here.

const NEEDS_QUOTES = /[",\r\n]/;

/** One RFC 4180 record, CRLF-terminated; a field is quoted when it holds a comma, a quote, CR or LF. */
export function csvRecord(fields: readonly string[]): string {
  return `${fields.map((field) => (NEEDS_QUOTES.test(field) ? `"${field.replaceAll('"', '""')}"` : field)).join(',')}\r\n`;
}

/** Thrown for text that is not RFC 4180 (a quote inside an unquoted field, an unterminated quoted field). */
export class CsvSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'CsvSyntaxError';
  }
}

/**
 * An incremental RFC 4180 parser: feed chunks split anywhere, get whole records back. Accepts CRLF, LF or CR
 * line ends; blank lines are skipped.
 */
export class CsvReader {
  private field = '';
  private record: string[] = [];
  private quoted = false;
  /** Inside a quoted field, a `"` was just read: the next character decides between `""` and the closing quote. */
  private quotePending = false;
  /** The current field was quoted and has closed: only a separator or a line end may follow. */
  private closed = false;
  private lastWasCr = false;
  private line = 1;
  /** The line the record being read started on, for error messages. */
  private recordLine = 1;

  /** Parses one more chunk; returns the records it completed. */
  push(chunk: string): string[][] {
    const done: string[][] = [];
    for (let index = 0; index < chunk.length; index++) {
      const char = chunk[index];
      if (this.quoted) {
        if (this.quotePending) {
          this.quotePending = false;
          if (char === '"') {
            this.field += '"';
            continue;
          }
          this.quoted = false;
          this.closed = true;
          // Falls through to the unquoted handling of this character.
        } else {
          if (char === '"') this.quotePending = true;
          else {
            if (char === '\n' || (char === '\r' && chunk[index + 1] !== '\n')) this.line++;
            this.field += char;
          }
          continue;
        }
      }
      const afterCr = this.lastWasCr;
      this.lastWasCr = false;
      if (char === '\n' && afterCr) continue;
      if (char === ',') {
        this.endField();
      } else if (char === '\r' || char === '\n') {
        this.lastWasCr = char === '\r';
        this.endRecord(done);
        this.line++;
        this.recordLine = this.line;
      } else if (char === '"') {
        if (this.field !== '' || this.closed)
          throw new CsvSyntaxError('a quote inside an unquoted field', this.line);
        this.quoted = true;
      } else {
        if (this.closed) throw new CsvSyntaxError('text after the closing quote of a field', this.line);
        this.field += char;
      }
    }
    return done;
  }

  /** Ends the input; returns the last record if it had no line end. */
  end(): string[][] {
    if (this.quoted && !this.quotePending) {
      throw new CsvSyntaxError('a quoted field is never closed', this.recordLine);
    }
    this.quoted = false;
    this.quotePending = false;
    const done: string[][] = [];
    this.endRecord(done);
    return done;
  }

  private endField(): void {
    this.record.push(this.field);
    this.field = '';
    this.closed = false;
  }

  private endRecord(done: string[][]): void {
    const blank = this.record.length === 0 && this.field === '' && !this.closed;
    this.endField();
    if (!blank) done.push(this.record);
    this.record = [];
  }
}
