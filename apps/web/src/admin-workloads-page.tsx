// `/admin/workloads` (admins and auditors): the non-human requesters the policy declares (issue 21) — which
// token identity each one is, the group accountable for it, what it may request — and its latest requests.
import type { ElevationRequest, Me } from './api';
import { ErrorMessage } from './messages';
import { Link } from './router';
import { formatDuration, formatTime } from './time';
import { useApiGet } from './use-api';

export interface WorkloadRow {
  id: string;
  title: string | null;
  issuer: string;
  audience: string;
  subject: string;
  ownerGroup: string;
  entitlements: string[];
  recentRequests: ElevationRequest[];
}

export function AdminWorkloadsPage() {
  const me = useApiGet<Me>('/api/me');
  if (!me.data) return <ErrorMessage error={me.error} />;
  if (!me.data.roles.includes('admin') && !me.data.roles.includes('auditor')) {
    return (
      <section>
        <h1>Workloads</h1>
        <p>This page is for admins and auditors.</p>
      </section>
    );
  }
  return <Workloads />;
}

function Workloads() {
  const loaded = useApiGet<{ workloads: WorkloadRow[] }>('/api/admin/workloads');
  return (
    <>
      <h1>Workloads</h1>
      <p className="muted">
        CI jobs and bots that request access with their OIDC token (the policy's <code>workloads:</code>).
        They never sign in; a person approves each request, and the owner group answers for them.
      </p>
      <ErrorMessage error={loaded.error} />
      {loaded.data && loaded.data.workloads.length === 0 && <p>The policy in force declares no workloads.</p>}
      {loaded.data?.workloads.map((workload) => (
        <WorkloadSection key={workload.id} workload={workload} />
      ))}
    </>
  );
}

function WorkloadSection({ workload }: { workload: WorkloadRow }) {
  const headingId = `workload-${workload.id}`;
  return (
    <section aria-labelledby={headingId} className="panel" data-workload-id={workload.id}>
      <h2 id={headingId}>
        {workload.title ?? workload.id} {workload.title && <span className="muted">({workload.id})</span>}
      </h2>
      <dl className="facts">
        <dt>Owner group</dt>
        <dd>{workload.ownerGroup}</dd>
        <dt>Token subject</dt>
        <dd className="break-anywhere">
          <code>{workload.subject}</code>
        </dd>
        <dt>Issuer</dt>
        <dd className="break-anywhere">{workload.issuer}</dd>
        <dt>Audience</dt>
        <dd className="break-anywhere">{workload.audience}</dd>
        <dt>May request</dt>
        <dd>{workload.entitlements.length > 0 ? workload.entitlements.join(', ') : '—'}</dd>
      </dl>
      <RecentRequests workload={workload} />
    </section>
  );
}

function RecentRequests({ workload }: { workload: WorkloadRow }) {
  if (workload.recentRequests.length === 0) return <p className="muted">No requests yet.</p>;
  return (
    <table>
      <caption className="visually-hidden">Latest requests of {workload.id}</caption>
      <thead>
        <tr>
          <th scope="col">Requested</th>
          <th scope="col">Entitlement</th>
          <th scope="col">Task</th>
          <th scope="col">Duration</th>
          <th scope="col">State</th>
        </tr>
      </thead>
      <tbody>
        {workload.recentRequests.map((request) => (
          <tr key={request.id} data-request-id={request.id}>
            <td data-label="Requested">
              <Link to={`/requests/${request.id}`}>{formatTime(request.createdAt)}</Link>
            </td>
            <td data-label="Entitlement">{request.entitlementId}</td>
            <td data-label="Task" className="break-anywhere">
              {request.justification || '—'}
            </td>
            <td data-label="Duration">{formatDuration(request.durationSeconds)}</td>
            <td data-label="State">
              <span className={`state state-${request.state.toLowerCase()}`}>{request.state}</span>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
