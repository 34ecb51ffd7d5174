// Pieces of a request shown on its page and to approvers: the scope in words, the decisions so far, the
// denial reason, and the timeline of what happened when.
import type { Decision, ElevationRequest } from './api';
import { GrantStatus } from './grant-status';
import { formatTime, relativeTime } from './time';

/** A scope object as a short list of "name: value" lines (nested values as compact JSON). */
export function ScopeView({ scope }: { scope: Record<string, unknown> }) {
  const entries = Object.entries(scope);
  if (entries.length === 0) return <span className="muted">the whole entitlement</span>;
  return (
    <ul className="decisions">
      {entries.map(([name, value]) => (
        <li key={name}>
          {name}:{' '}
          {Array.isArray(value)
            ? value.join(', ')
            : typeof value === 'object'
              ? JSON.stringify(value)
              : String(value)}
        </li>
      ))}
    </ul>
  );
}

/** A moment to the second, with how long ago or ahead it is by the server's clock. */
export function When({ iso, now }: { iso: string | null | undefined; now: number }) {
  if (!iso) return <>—</>;
  return (
    <time dateTime={iso}>
      {formatTime(iso)} <span className="muted">({relativeTime(iso, now)})</span>
    </time>
  );
}

function quoted(comment: string | null): string {
  return comment ? ` — “${comment}”` : '';
}

/** "1 of 2 approvals: bob — “one row only”", and any denial. */
export function Decisions({ request }: { request: ElevationRequest }) {
  const decisions = request.decisions ?? [];
  const approvals = decisions.filter((decision) => decision.decision === 'approve');
  return (
    <div data-testid="decisions">
      <p>
        {request.breakGlass
          ? 'Break-glass: no approval needed; reviewed afterwards.'
          : request.approvalsRequired === 0
            ? 'Self-service: no approval needed.'
            : `${approvals.length} of ${request.approvalsRequired} approval${request.approvalsRequired === 1 ? '' : 's'}${approvals.length > 0 ? ':' : ''}`}
      </p>
      {decisions.length > 0 && (
        <ul className="decisions">
          {decisions.map((decision) => (
            <li key={`${decision.approver}-${decision.at}`}>
              {decision.approver} {decision.decision === 'approve' ? 'approved' : 'denied'}
              {quoted(decision.comment)}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** The denial, prominently: who denied it and why (the requester's first question). */
export function DenialReason({ request }: { request: ElevationRequest }) {
  if (request.state !== 'DENIED') return null;
  const denial = (request.decisions ?? []).find((decision: Decision) => decision.decision === 'deny');
  return (
    <p className="warning" data-testid="denial-reason">
      Denied{denial ? ` by ${denial.approver}` : ''}.{' '}
      {denial?.comment ? <>Reason: “{denial.comment}”</> : 'No reason was given.'}
    </p>
  );
}

interface Moment {
  at: string;
  text: string;
}

function moments(request: ElevationRequest): Moment[] {
  const list: Moment[] = [
    { at: request.createdAt, text: `Requested by ${request.requester ?? 'the requester'}` },
  ];
  for (const decision of request.decisions ?? []) {
    const verb = decision.decision === 'approve' ? 'Approved' : 'Denied';
    list.push({ at: decision.at, text: `${verb} by ${decision.approver}${quoted(decision.comment)}` });
  }
  if (request.activatedAt)
    list.push({ at: request.activatedAt, text: 'Activated: the credential was issued' });
  // A denial ends the request with the decision listed above.
  if (request.endedAt && request.state !== 'DENIED') {
    const reason = request.endReason ? ` (${request.endReason.toLowerCase().replace(/_/g, ' ')})` : '';
    list.push({ at: request.endedAt, text: `Ended${reason}: ${request.state}` });
  }
  if (request.grant?.revokedAt) list.push({ at: request.grant.revokedAt, text: 'Credential revoked' });
  return list.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}

/** What happened, oldest first, each to the second; the credential's revoke state at the end. */
export function Timeline({ request, now }: { request: ElevationRequest; now: number }) {
  return (
    <>
      <ol className="timeline">
        {moments(request).map((moment) => (
          <li key={`${moment.at}-${moment.text}`}>
            <When iso={moment.at} now={now} />: {moment.text}
          </li>
        ))}
      </ol>
      <GrantStatus grant={request.grant} />
    </>
  );
}
