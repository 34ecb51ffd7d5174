// `/admin/access`: every active grant with its person, entitlement, time left and revocation health, and every
// request with filters; the stuck-revocation banner on top.
import { useEffect, useId, useState } from 'react';
import type { ElevationRequest, Page } from './api';
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

function AllRequests() {
  const id = useId();
  const [state, setState] = useState('');
  const [person, setPerson] = useState('');
  const requests = useApiGet<Page<ElevationRequest>>(
    `/api/requests?limit=100${state ? `&state=${state}` : ''}`,
  );
  const shown = (requests.data?.items ?? []).filter(
    (request) => !person.trim() || (request.requester ?? '').includes(person.trim()),
  );
  return (
    <section aria-labelledby="requests-heading">
      <h2 id="requests-heading">All requests</h2>
      <div className="filters">
        <label htmlFor={`${id}-state`}>State</label>
        <select id={`${id}-state`} value={state} onChange={(event) => setState(event.target.value)}>
          {REQUEST_STATES.map((value) => (
            <option key={value} value={value}>
              {value || 'any'}
            </option>
          ))}
        </select>
        <label htmlFor={`${id}-person`}>Requester</label>
        <input id={`${id}-person`} value={person} onChange={(event) => setPerson(event.target.value)} />
      </div>
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
    </section>
  );
}
