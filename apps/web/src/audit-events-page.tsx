// `/audit`: the auditor's view of the hash-chained trail: filters, cursor paging, and a drawer with one
// event's JSON and how its hash links to the event before it.
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { api, describeError } from './api';
import {
  AuditFilterFields,
  filterParams,
  filtersFromSearch,
  NO_FILTERS,
  type FilterValues,
} from './audit-filters';
import type { AuditEvent, AuditEventPage } from './audit-types';
import { ErrorMessage } from './messages';
import { Link } from './router';
import { formatTime } from './time';

const PAGE_SIZE = 50;

export function AuditEventsPage() {
  const [values, setValues] = useState<FilterValues>(() => filtersFromSearch(location.search));
  const [applied, setApplied] = useState(() => filterParams(values).toString());
  // The cursors of the pages before this one, to go back; the last is this page's.
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors.at(-1);
  const query = new URLSearchParams(applied);
  query.set('limit', String(PAGE_SIZE));
  if (cursor) query.set('cursor', cursor);
  const page = usePageAt(`/api/audit/events?${query.toString()}`);
  const [open, setOpen] = useState<AuditEvent | null>(null);

  const search = (event: FormEvent) => {
    event.preventDefault();
    const params = filterParams(values).toString();
    history.replaceState(null, '', params ? `/audit?${params}` : '/audit');
    setApplied(params);
    setCursors([]);
  };
  const clear = () => {
    setValues(NO_FILTERS);
    history.replaceState(null, '', '/audit');
    setApplied('');
    setCursors([]);
  };
  const data = page.data;
  return (
    <section aria-labelledby="audit-heading">
      <h1 id="audit-heading">Audit events</h1>
      <p>
        Every event of the hash chain, oldest first. <Link to="/audit/export">Export a signed file</Link> to
        verify offline.
      </p>
      <form className="stacked audit-filters" onSubmit={search} aria-label="Filter events">
        <AuditFilterFields values={values} onChange={setValues} />
        <div className="actions">
          <button type="submit">Search</button>
          <button type="button" className="secondary" onClick={clear}>
            Clear filters
          </button>
        </div>
      </form>
      <ErrorMessage error={page.error} />
      {!data && !page.error && <p className="muted">Loading…</p>}
      {data && (
        <EventTable
          page={data}
          onOpen={setOpen}
          paging={{
            previous: cursors.length > 0 ? () => setCursors(cursors.slice(0, -1)) : null,
            next: data.nextCursor ? () => setCursors([...cursors, data.nextCursor as string]) : null,
          }}
        />
      )}
      {open && <EventDrawer event={open} usernames={data?.usernames ?? {}} onClose={() => setOpen(null)} />}
    </section>
  );
}

/** The page at `path`; nothing while a new path loads, so a table never shows the answer to other filters. */
function usePageAt(path: string): { data?: AuditEventPage; error?: string } {
  const [answer, setAnswer] = useState<{ path: string; data?: AuditEventPage; error?: string } | null>(null);
  useEffect(() => {
    let current = true;
    api.get<AuditEventPage>(path).then(
      (data) => current && setAnswer({ path, data }),
      (reason: unknown) => current && setAnswer({ path, error: describeError(reason) }),
    );
    return () => {
      current = false;
    };
  }, [path]);
  return answer?.path === path ? answer : {};
}

function EventTable({
  page,
  onOpen,
  paging,
}: {
  page: AuditEventPage;
  onOpen: (event: AuditEvent) => void;
  paging: { previous: (() => void) | null; next: (() => void) | null };
}) {
  if (page.items.length === 0) return <p data-testid="no-events">No event matches these filters.</p>;
  return (
    <>
      <div className="table-scroll">
        <table data-testid="audit-events">
          <caption className="visually-hidden">Audit events</caption>
          <thead>
            <tr>
              <th scope="col">Seq</th>
              <th scope="col">Time</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Request</th>
              <th scope="col">
                <span className="visually-hidden">Details</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {page.items.map((event) => (
              <EventRow key={event.seq} event={event} usernames={page.usernames} onOpen={onOpen} />
            ))}
          </tbody>
        </table>
      </div>
      <nav className="actions" aria-label="Pages of events">
        <button
          type="button"
          className="secondary"
          disabled={!paging.previous}
          onClick={() => paging.previous?.()}
        >
          ← Previous page
        </button>
        <button type="button" className="secondary" disabled={!paging.next} onClick={() => paging.next?.()}>
          Next page →
        </button>
      </nav>
    </>
  );
}

function EventRow({
  event,
  usernames,
  onOpen,
}: {
  event: AuditEvent;
  usernames: Record<string, string>;
  onOpen: (event: AuditEvent) => void;
}) {
  return (
    <tr data-seq={event.seq} data-action={event.action}>
      <td data-label="Seq">{event.seq}</td>
      <td data-label="Time">
        <time dateTime={event.at}>{formatTime(event.at)}</time>
      </td>
      <td data-label="Actor">{usernames[event.actorId] ?? event.actorId}</td>
      <td data-label="Action">
        <code>{event.action}</code>
      </td>
      <td data-label="Request">
        {event.requestId ? (
          <Link to={`/requests/${event.requestId}/chain`}>
            {event.requestId.slice(0, 8)}
            <span className="visually-hidden"> (approval chain of request {event.requestId})</span>
          </Link>
        ) : (
          <span className="muted">—</span>
        )}
      </td>
      <td>
        <button type="button" className="secondary" onClick={() => onOpen(event)}>
          Details<span className="visually-hidden"> of event {event.seq}</span>
        </button>
      </td>
    </tr>
  );
}

/** The event before `event` in the chain (seq − 1), whatever the filters. */
async function previousEvent(event: AuditEvent): Promise<AuditEvent | null> {
  if (event.seq <= 1) return null;
  const page = await api.get<AuditEventPage>(`/api/audit/events?cursor=${event.seq - 2}&limit=1`);
  return page.items[0] ?? null;
}

/** A modal drawer: the event as JSON, and whether its prevHash is the hash of the event before it. */
function EventDrawer({
  event,
  usernames,
  onClose,
}: {
  event: AuditEvent;
  usernames: Record<string, string>;
  onClose: () => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [previous, setPrevious] = useState<AuditEvent | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const element = dialog.current;
    if (element && !element.open) element.showModal();
  }, []);
  useEffect(() => {
    let current = true;
    setPrevious(undefined);
    previousEvent(event).then(
      (found) => current && setPrevious(found),
      (reason: unknown) => current && setError(describeError(reason)),
    );
    return () => {
      current = false;
    };
  }, [event]);
  const links = previous === null ? event.prevHash === '0'.repeat(64) : previous?.hash === event.prevHash;
  return (
    <dialog ref={dialog} className="drawer" aria-labelledby="drawer-heading" onClose={onClose}>
      <div className="section-head">
        <h2 id="drawer-heading">Event {event.seq}</h2>
        <button type="button" className="secondary" onClick={() => dialog.current?.close()}>
          Close
        </button>
      </div>
      <p>
        <code>{event.action}</code> by {usernames[event.actorId] ?? event.actorId} at {formatTime(event.at)}
      </p>
      <dl className="facts" data-testid="hash-link">
        <dt>Hash</dt>
        <dd>
          <code>{event.hash}</code>
        </dd>
        <dt>Previous hash</dt>
        <dd>
          <code>{event.prevHash}</code>
        </dd>
        <dt>Link</dt>
        <dd data-testid="hash-link-verdict">
          {previous === undefined
            ? error
              ? '—'
              : 'Checking…'
            : links
              ? previous === null
                ? 'First event: its previous hash is the genesis value.'
                : `Links to event ${previous.seq}: its hash is this event's previous hash.`
              : `Does not link: event ${event.seq - 1}'s hash is not this event's previous hash.`}
        </dd>
      </dl>
      <ErrorMessage error={error} />
      <p className="muted">
        hash = sha256(previous hash ‖ JCS of the event without its hash). The offline verifier recomputes it.
      </p>
      <h3>Event JSON</h3>
      <pre className="json" data-testid="event-json" tabIndex={0}>
        {JSON.stringify(event, null, 2)}
      </pre>
    </dialog>
  );
}
