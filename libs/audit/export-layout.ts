// The bytes of an export file, shared by the writer (export.ts) and the verifier. Every event and the manifest
// are written as JCS, the canonical JSON their hash and signature cover, so the verifier can refuse any line
// that is not exactly that: a duplicate key (JSON.parse keeps the last, a grep reader sees the first),
// reordered keys or extra whitespace would show a reader something other than what was verified.
import { canonicalJson } from '../domain/canonical-json.js';
import { csvRecord } from './csv.js';
import { eventJcs, jcs } from './jcs.js';
import {
  CSV_MANIFEST_MARKER,
  EXPORT_COLUMNS,
  type ExportedEvent,
  type ExportFormat,
  type ExportManifest,
} from './manifest.js';

/** How one format writes its start, each event and its end (the signed manifest). */
export interface ExportLayout {
  start(): string;
  event(event: ExportedEvent, index: number): string;
  end(manifest: ExportManifest): string;
}

/** First line of a JSON export; each event follows on its own line, then JSON_EXPORT_MANIFEST. */
export const JSON_EXPORT_START = '{"events":[';
/** Starts the last line of a JSON export: `],"manifest":{…}}`. */
export const JSON_EXPORT_MANIFEST = '],"manifest":';

/**
 * - ndjson: one event per line, then the manifest (`"type":"manifest"`) as the last line.
 * - json: `{"events":[`, one event per line (`,` ends every one but the last), `],"manifest":{...}}`.
 * - csv: CRLF records: the header (EXPORT_COLUMNS), one record per event, then a record whose seq field is
 *   `#manifest` and whose data field is the manifest JSON, the other fields empty.
 */
export const EXPORT_LAYOUTS: Readonly<Record<ExportFormat, ExportLayout>> = Object.freeze({
  ndjson: {
    start: () => '',
    event: (event) => `${eventJcs(event)}\n`,
    end: (manifest) => `${canonicalJson(manifest)}\n`,
  },
  json: {
    start: () => JSON_EXPORT_START,
    event: (event, index) => `${index === 0 ? '\n' : ',\n'}${eventJcs(event)}`,
    end: (manifest) => `\n${JSON_EXPORT_MANIFEST}${canonicalJson(manifest)}}\n`,
  },
  csv: {
    start: () => csvRecord(EXPORT_COLUMNS),
    event: (event) =>
      csvRecord([
        String(event.seq),
        event.at,
        event.actorId,
        event.action,
        event.subjectType,
        event.subjectId,
        event.requestId ?? '',
        jcs(event.data),
        event.prevHash,
        event.hash,
      ]),
    end: (manifest) =>
      csvRecord(
        EXPORT_COLUMNS.map((column, index) =>
          index === 0 ? CSV_MANIFEST_MARKER : column === 'data' ? canonicalJson(manifest) : '',
        ),
      ),
  },
});
