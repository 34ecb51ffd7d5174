// How a workload's request (issue 21: a CI job or deploy bot filed it with its OIDC token) is told apart from a
// person's: a "workload" badge by the requester, and the group accountable for it, wherever approvers look.
import type { ElevationRequest } from './api';

export function isWorkloadRequest(request: ElevationRequest): boolean {
  return request.requesterKind === 'workload' || Boolean(request.workload);
}

/** The requester's name as a list shows it: a workload by its id (the username is `workload:<id>`). */
export function requesterName(request: ElevationRequest): string {
  if (request.workload) return request.workload.id;
  return request.requester ?? request.requesterId;
}

/** The "workload" badge, for a workload's request only. */
export function WorkloadBadge({ request }: { request: ElevationRequest }) {
  if (!isWorkloadRequest(request)) return null;
  return (
    <span className="badge badge-workload" data-testid="workload-badge">
      workload
    </span>
  );
}

/** The requester, with a "workload" badge and its owner group for a workload's request. */
export function RequesterLabel({ request }: { request: ElevationRequest }) {
  if (!isWorkloadRequest(request)) return <>{requesterName(request)}</>;
  return (
    <>
      {requesterName(request)}
      <WorkloadBadge request={request} />
      {request.workload && <span className="workload-owner">owner: {request.workload.ownerGroup}</span>}
    </>
  );
}

/** Extra facts (dt/dd pairs) for a workload's request: who answers for it and which token identity filed it. */
export function WorkloadFacts({ request }: { request: ElevationRequest }) {
  const workload = request.workload;
  if (!workload) return null;
  return (
    <>
      <dt>Workload</dt>
      <dd data-testid="workload-facts">
        {workload.title ?? workload.id} <span className="muted">({workload.id})</span>
      </dd>
      <dt>Owner group</dt>
      <dd>{workload.ownerGroup}</dd>
      <dt>Token subject</dt>
      <dd className="break-anywhere">
        {workload.subject} <span className="muted">from {workload.issuer}</span>
      </dd>
    </>
  );
}
