// `/admin/access`: every active grant with its person, entitlement, time left and revocation health, and every
// request with filters; the stuck-revocation banner on top.
import { useEffect, useId, useState, type ChangeEvent, type FormEvent } from 'react';
import type { ElevationRequest, Entitlement, Page } from './api';
import { AdminOnly } from './admin-page';
import { RevocationBanner, revocationStuck, type AdminGrant } from './admin-revocations';
import { Link } from './router';
import { ErrorMessage } from './messages';
import { formatTime, timeLeft } from './time';
import { useApiGet } from './use-api';

const REQUEST_STATES = [
  '',
  'PENDING',
  'APPROVED',
  'ACTIVE',
  'DENIED',
  'EXPIRED',
  'REVOKED',
  'ENDED',
  'CANCELLED',
];

/** Ticks once a second, for the countdowns. */
function useNow(): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  return now;
}

function health(grant: AdminGrant, now: number): string {
  if (revocationStuck(grant, now)) return `stuck (${grant.revokeAttempts} attempts)`;
  if (grant.revokeAttempts > 0) return `retrying (${grant.revokeAttempts} failed attempts)`;
  return 'healthy';
}

export function AdminAccessPage() {
  return (
    <AdminOnly title="Access now">
      <AccessNow />
    </AdminOnly>
  );
}

function AccessNow() {
  const grants = useApiGet<{ items: AdminGrant[] }>('/api/admin/grants?state=ACTIVE&limit=200');
  const now = useNow();
  return (
    <>
      <h1>Access now</h1>
      <RevocationBanner onRetried={grants.reload} />
      <section aria-labelledby="grants-heading">
        <h2 id="grants-heading">Active grants</h2>
        <ErrorMessage error={grants.error} />
        {grants.data && grants.data.items.length === 0 && <p>No one holds access right now.</p>}
        {grants.data && grants.data.items.length > 0 && (
          <table data-testid="active-grants">
            <thead>
              <tr>
                <th scope="col">Person</th>
                <th scope="col">Entitlement</th>
                <th scope="col">Connector</th>
                <th scope="col">Time left</th>
                <th scope="col">Revocation</th>
              </tr>
            </thead>
            <tbody>
              {grants.data.items.map((grant) => (
                <tr key={grant.id}>
                  <td data-label="Person">{grant.requester}</td>
                  <td data-label="Entitlement">
                    <Link to={`/requests/${grant.requestId}`}>{grant.entitlementId}</Link>
                  </td>
                  <td data-label="Connector">{grant.connector}</td>
                  <td data-label="Time left">
                    {timeLeft(grant.notAfter, now) ?? 'due'} (until {formatTime(grant.notAfter)})
                  </td>
                  <td data-label="Revocation">{health(grant, now)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <AllRequests />
    </>
  );
}

/** The filters of the request list, applied together when the form is sent. */
interface RequestFilters {
  state: string;
  entitlementId: string;
  requester: string;
}

function requestsPath(filters: RequestFilters, cursor: string | null): string {
  const query = new URLSearchParams({ limit: '100' });
  if (filters.state) query.set('state', filters.state);
  if (filters.entitlementId) query.set('entitlementId', filters.entitlementId);
  if (filters.requester.trim()) query.set('requester', filters.requester.trim());
  if (cursor) query.set('cursor', cursor);
  return `/api/requests?${query.toString()}`;
}

function RequestFilterForm({ onApply }: { onApply: (filters: RequestFilters) => void }) {
  const id = useId();
  const [draft, setDraft] = useState<RequestFilters>({ state: '', entitlementId: '', requester: '' });
  const entitlements = useApiGet<{ items: Entitlement[] }>('/api/entitlements');
  const set = (field: keyof RequestFilters) => (event: ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
    setDraft((current) => ({ ...current, [field]: event.target.value }));
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onApply(draft);
  };
  return (
    <form className="filters" onSubmit={submit} aria-label="Filter requests">
      <label htmlFor={`${id}-state`}>State</label>
      <select id={`${id}-state`} value={draft.state} onChange={set('state')}>
        {REQUEST_STATES.map((value) => (
          <option key={value} value={value}>
            {value || 'any'}
          </option>
        ))}
      </select>
      <label htmlFor={`${id}-entitlement`}>Entitlement</label>
      <select id={`${id}-entitlement`} value={draft.entitlementId} onChange={set('entitlementId')}>
        <option value="">any</option>
        {(entitlements.data?.items ?? []).map((entitlement) => (
          <option key={entitlement.id} value={entitlement.id}>
            {entitlement.id}
          </option>
        ))}
      </select>
      <label htmlFor={`${id}-person`}>Requester (username)</label>
      <input
        id={`${id}-person`}
        value={draft.requester}
        onChange={set('requester')}
        pattern="[a-z0-9][a-z0-9._\-]{0,63}"
        autoComplete="off"
      />
      <button type="submit">Apply filters</button>
    </form>
  );
}

function AllRequests() {
  const [filters, setFilters] = useState<RequestFilters>({ state: '', entitlementId: '', requester: '' });
  const [cursor, setCursor] = useState<string | null>(null);
  const requests = useApiGet<Page<ElevationRequest>>(requestsPath(filters, cursor));
  const shown = requests.data?.items ?? [];
  const apply = (next: RequestFilters) => {
    setFilters(next);
    setCursor(null);
  };
  return (
    <section aria-labelledby="requests-heading">
      <h2 id="requests-heading">All requests</h2>
      <RequestFilterForm onApply={apply} />
      <ErrorMessage error={requests.error} />
      <table>
        <thead>
          <tr>
            <th scope="col">Requested</th>
            <th scope="col">Requester</th>
            <th scope="col">Entitlement</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((request) => (
            <tr key={request.id}>
              <td data-label="Requested">{formatTime(request.createdAt)}</td>
              <td data-label="Requester">{request.requester ?? '—'}</td>
              <td data-label="Entitlement">
                <Link to={`/requests/${request.id}`}>{request.entitlementId}</Link>
              </td>
              <td data-label="State">{request.state}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {shown.length === 0 && requests.data && <p>No request matches.</p>}
      {(cursor || requests.data?.nextCursor) && (
        <p>
          {cursor && (
            <button type="button" className="secondary" onClick={() => setCursor(null)}>
              First page
            </button>
          )}{' '}
          {requests.data?.nextCursor && (
            <button type="button" onClick={() => setCursor(requests.data?.nextCursor ?? null)}>
              Older requests
            </button>
          )}
        </p>
      )}
    </section>
  );
}
