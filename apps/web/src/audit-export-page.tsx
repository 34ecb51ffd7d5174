// `/audit/export`: a signed export of the trail (NDJSON, CSV or JSON) with the same filters as the events
// page, after a passkey step-up bound to exactly these parameters. The file streams into the browser with a
// running count of bytes and events, is offered as a download, and the page gives the command to verify it.
import { useState, type FormEvent } from 'react';
import { api, ApiError } from './api';
import { AuditFilterFields, filterParams, filtersFromSearch, type FilterValues } from './audit-filters';
import { downloadBlob, verifyCommand, type AuditEventPage, type AuditFilters } from './audit-types';
import { CopyButton } from './copy-button';
import { ErrorMessage, Notice } from './messages';
import { Link } from './router';
import { stepUp } from './step-up';
import { useAction } from './use-api';

type ExportFormat = 'ndjson' | 'csv' | 'json';

const FORMATS: Array<{ value: ExportFormat; label: string; hint: string }> = [
  { value: 'ndjson', label: 'NDJSON', hint: 'one event per line, then the signed manifest' },
  { value: 'csv', label: 'CSV', hint: 'for spreadsheets; the manifest is the last row' },
  { value: 'json', label: 'JSON', hint: 'one document: events and manifest' },
];

/** Lines of an export that are not events: the manifest, and the header of CSV and JSON. */
const FRAMING_LINES: Record<ExportFormat, number> = { ndjson: 1, csv: 2, json: 2 };

interface Progress {
  bytes: number;
  events: number;
  done: boolean;
}

interface Finished {
  fileName: string;
  bytes: number;
  events: number;
}

export function AuditExportPage() {
  const [format, setFormat] = useState<ExportFormat>('ndjson');
  const [values, setValues] = useState<FilterValues>(() => filtersFromSearch(location.search));
  const [progress, setProgress] = useState<Progress | null>(null);
  const [finished, setFinished] = useState<Finished | null>(null);
  const exporting = useAction();

  const start = (event: FormEvent) => {
    event.preventDefault();
    setFinished(null);
    setProgress(null);
    void exporting.run(async () => {
      const filters = await exportFilters(values);
      const body: Record<string, unknown> = { format };
      if (Object.keys(filters).length > 0) body.filters = filters;
      const proof = await stepUp('audit.export', 'audit', body);
      setProgress({ bytes: 0, events: 0, done: false });
      const result = await streamExport({ ...body, stepUp: proof }, format, setProgress);
      downloadBlob(result.blob, result.fileName);
      setFinished({ fileName: result.fileName, bytes: result.bytes, events: result.events });
    });
  };
  return (
    <section aria-labelledby="export-heading">
      <p>
        <Link to="/audit">← Audit events</Link>
      </p>
      <h1 id="export-heading">Export the audit trail</h1>
      <p>
        A signed file of the events that match, up to the chain head when it starts. Exporting asks for your
        passkey and is itself audited.
      </p>
      <form className="stacked audit-filters" onSubmit={start} aria-label="Export">
        <fieldset className="formats">
          <legend>Format</legend>
          {FORMATS.map((option) => (
            <label key={option.value} className="check">
              <input
                type="radio"
                name="format"
                value={option.value}
                checked={format === option.value}
                onChange={() => setFormat(option.value)}
              />
              {option.label} <span className="muted">— {option.hint}</span>
            </label>
          ))}
        </fieldset>
        <AuditFilterFields values={values} onChange={setValues} />
        <div className="actions">
          <button type="submit" disabled={exporting.busy}>
            Export with passkey
          </button>
        </div>
      </form>
      <ErrorMessage error={exporting.error} focus />
      {progress && <ExportProgress progress={progress} />}
      {finished && <Verify finished={finished} />}
    </section>
  );
}

/** The filters as the export takes them: the actor's username resolved to a user id first. */
async function exportFilters(values: FilterValues): Promise<AuditFilters> {
  const params = filterParams(values);
  const filters = Object.fromEntries(params) as AuditFilters & { actor?: string };
  const { actor, ...rest } = filters;
  if (actor === undefined) return rest;
  // The event list resolves a username (a 4xx for nobody by that name); the export records the id.
  const page = await api.get<AuditEventPage>(`/api/audit/events?actor=${encodeURIComponent(actor)}&limit=1`);
  return { ...rest, actorId: page.actorId ?? undefined };
}

/** POSTs the export and reads it as it streams, reporting bytes and events; the file name from the answer. */
async function streamExport(
  body: Record<string, unknown>,
  format: ExportFormat,
  report: (progress: Progress) => void,
): Promise<{ blob: Blob; fileName: string; bytes: number; events: number }> {
  const response = await fetch('/api/audit/export', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (!response.ok || response.body === null) throw await refusal(response);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  let lines = 0;
  for (;;) {
    let read: ReadableStreamReadResult<Uint8Array>;
    try {
      read = await reader.read();
    } catch {
      throw new Error(
        `The export broke off after ${bytes} bytes: that file would be incomplete, so none was saved.`,
      );
    }
    if (read.done) break;
    chunks.push(read.value);
    bytes += read.value.byteLength;
    for (const byte of read.value) if (byte === 0x0a) lines += 1;
    report({ bytes, events: Math.max(0, lines - FRAMING_LINES[format] + 1), done: false });
  }
  const events = Math.max(0, lines - FRAMING_LINES[format]);
  report({ bytes, events, done: true });
  const type = response.headers.get('content-type') ?? 'application/octet-stream';
  return {
    blob: new Blob(chunks as BlobPart[], { type }),
    fileName: fileNameOf(response, format),
    bytes,
    events,
  };
}

async function refusal(response: Response): Promise<Error> {
  try {
    const envelope = (await response.json()) as { error?: { code?: string; message?: string } };
    return new ApiError(
      response.status,
      envelope.error?.code ?? `HTTP_${response.status}`,
      envelope.error?.message ?? `The broker answered ${response.status}`,
    );
  } catch {
    return new ApiError(response.status, `HTTP_${response.status}`, `The broker answered ${response.status}`);
  }
}

function fileNameOf(response: Response, format: ExportFormat): string {
  const disposition = response.headers.get('content-disposition') ?? '';
  const named = /filename="([^"]+)"/.exec(disposition)?.[1];
  return named && /^[\w.-]+$/.test(named) ? named : `audit-export.${format}`;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function ExportProgress({ progress }: { progress: Progress }) {
  return (
    <div className="panel" data-testid="export-progress">
      <label>
        {progress.done ? 'Export complete' : 'Exporting…'}
        <progress max={progress.done ? 1 : undefined} value={progress.done ? 1 : undefined} />
      </label>
      <p role="status" data-testid="export-counts">
        {formatBytes(progress.bytes)} received, {progress.events} event{progress.events === 1 ? '' : 's'}
      </p>
    </div>
  );
}

function Verify({ finished }: { finished: Finished }) {
  const command = verifyCommand(finished.fileName);
  return (
    <>
      <Notice
        focus
      >{`Saved ${finished.fileName}: ${finished.events} events, ${formatBytes(finished.bytes)}.`}</Notice>
      <p>Verify it offline against the broker's published audit keys, from a checkout of this project:</p>
      <pre className="command" data-testid="verify-command">
        {command}
      </pre>
      <CopyButton text={command} label="Copy the command" />
    </>
  );
}
