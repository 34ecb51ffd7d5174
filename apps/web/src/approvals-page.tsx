// `/approvals`: requests waiting for the signed-in approver. Opening one records that it was read (the
// broker flags approvals given without reading); approve and deny each take a passkey step-up bound to it.
import { useId, useState } from 'react';
import { api, type ElevationRequest, type Page } from './api';
import { Deadline } from './countdown';
import { useEntitlements } from './entitlement-names';
import { useLiveEvents, useServerNow } from './live';
import { ErrorMessage, Notice } from './messages';
import { ReasonForm } from './reason-form';
import { RequesterHistory, RubberStampHint } from './approver-context';
import { ScopeView } from './request-parts';
import { RequesterLabel, requesterName, WorkloadFacts } from './workload-parts';
import { Link } from './router';
import { decideWithStepUp } from './step-up';
import { formatDuration, formatTime, stateByNow } from './time';
import { useAction, useApiGet } from './use-api';

export function ApprovalsPage() {
  const inbox = useApiGet<Page<ElevationRequest>>('/api/approvals/inbox');
  const [openId, setOpenId] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<string | null>(null);
  const now = useServerNow();
  const { titleOf } = useEntitlements();
  useLiveEvents(inbox.refresh);

  const decided = (request: ElevationRequest, decision: 'approve' | 'deny') => {
    setOpenId(null);
    setOutcome(
      `${decision === 'approve' ? 'Approved' : 'Denied'} ${request.requester ?? 'the'}'s request for ${titleOf(request.entitlementId)}: it is now ${request.state}.`,
    );
    inbox.reload();
  };

  return (
    <>
      <div className="section-head">
        <h1>Approvals</h1>
        <button
          type="button"
          className="secondary"
          onClick={() => {
            setOutcome(null);
            inbox.reload();
          }}
        >
          Refresh
        </button>
      </div>
      <Notice focus>{outcome}</Notice>
      <ErrorMessage error={inbox.error} />
      {inbox.data &&
        (inbox.data.items.length === 0 ? (
          <p className="muted">Nothing waits for you.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">Requester</th>
                <th scope="col">Entitlement</th>
                <th scope="col">Duration</th>
                <th scope="col">Requested</th>
                <th scope="col">Decide by</th>
                <th scope="col">
                  <span className="visually-hidden">Open</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {inbox.data.items.map((request) => (
                <tr key={request.id} data-request-id={request.id}>
                  <td data-label="Requester">
                    <RequesterLabel request={request} />
                  </td>
                  <td data-label="Entitlement">{titleOf(request.entitlementId)}</td>
                  <td data-label="Duration">{formatDuration(request.durationSeconds)}</td>
                  <td data-label="Requested">{formatTime(request.createdAt)}</td>
                  <td data-label="Decide by">
                    <Deadline iso={request.pendingUntil} now={now} />
                  </td>
                  <td>
                    <button
                      type="button"
                      onClick={() => {
                        setOutcome(null);
                        setOpenId(request.id);
                      }}
                      aria-label={`Open the request by ${request.workload ? `workload ${request.workload.id}` : (request.requester ?? 'unknown')} for ${titleOf(request.entitlementId)}`}
                    >
                      Open
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ))}
      {openId && (
        <RequestToDecide key={openId} id={openId} onDecided={decided} onClose={() => setOpenId(null)} />
      )}
    </>
  );
}

function RequestToDecide({
  id,
  onDecided,
  onClose,
}: {
  id: string;
  onDecided: (request: ElevationRequest, decision: 'approve' | 'deny') => void;
  onClose: () => void;
}) {
  const commentId = useId();
  // GET /api/requests/:id is what records that the approver read it.
  const loaded = useApiGet<ElevationRequest>(`/api/requests/${encodeURIComponent(id)}`);
  const action = useAction();
  const [comment, setComment] = useState('');
  const [denying, setDenying] = useState(false);
  const request = loaded.data;
  const now = useServerNow();
  const entitlements = useEntitlements();
  const entitlement = request ? entitlements.find(request.entitlementId) : undefined;
  // When the approver opened it, for the rubber-stamp hint.
  const [openedAt] = useState(() => Date.now());
  // Someone else may decide it (or it may expire) while it is open: the page says so before any passkey prompt.
  useLiveEvents((event) => {
    if (event.requestId === null || event.requestId === id) loaded.refresh();
  });
  const state = request ? stateByNow(request, now) : null;
  const open = state === 'PENDING';

  /** Asks the broker first, so that a request decided meanwhile never costs a passkey prompt. */
  const stillOpen = async () => {
    const fresh = await api.get<ElevationRequest>(`/api/requests/${encodeURIComponent(id)}`);
    if (fresh.state !== 'PENDING') {
      loaded.reload();
      throw new Error(`This request was decided meanwhile: it is now ${fresh.state}. No passkey was asked.`);
    }
  };
  const approve = () =>
    action.run(async () => {
      await stillOpen();
      const body = comment.trim() ? { comment: comment.trim() } : {};
      onDecided(await decideWithStepUp<ElevationRequest>(id, 'approve', body), 'approve');
    });
  const deny = (reason: string) =>
    action.run(async () => {
      await stillOpen();
      onDecided(await decideWithStepUp<ElevationRequest>(id, 'deny', { reason }), 'deny');
    });

  return (
    <section className="panel" aria-labelledby="decide-heading" data-request-id={id}>
      <h2 id="decide-heading">Request {request ? `by ${requesterName(request)}` : ''}</h2>
      <ErrorMessage error={loaded.error} />
      {request && (
        <>
          <dl className="facts">
            <dt>Entitlement</dt>
            <dd>
              {entitlement?.title ?? request.entitlementId}{' '}
              <span className="muted">({request.entitlementId})</span>
              {entitlement?.description && (
                <span className="entitlement-description" data-testid="entitlement-description">
                  {entitlement.description}
                </span>
              )}
            </dd>
            <dt>Scope</dt>
            <dd>
              <ScopeView scope={request.scope} />
            </dd>
            <dt>Duration</dt>
            <dd>{formatDuration(request.durationSeconds)}</dd>
            <WorkloadFacts request={request} />
            <dt>{request.workload ? 'Task' : 'Justification'}</dt>
            <dd className="prose">{request.justification || '—'}</dd>
            <dt>Ticket</dt>
            <dd>{request.ticket ?? '—'}</dd>
            <dt>Starts</dt>
            <dd>{request.notBefore ? formatTime(request.notBefore) : 'when activated'}</dd>
            <dt>Approvals needed</dt>
            <dd>{request.approvalsRequired}</dd>
            <dt>State</dt>
            <dd data-state={state}>{state}</dd>
          </dl>
          <RequesterHistory request={request} titleOf={entitlements.titleOf} />
          <p>
            <Link to={`/requests/${request.id}`}>Open the request's own page</Link>
          </p>
          {!open ? (
            <div className="stacked">
              <p className="warning" role="alert">
                Someone else decided this request, or it ended: it is now {state}. Nothing is left for you to
                decide.
              </p>
              <div>
                <button type="button" className="secondary" onClick={onClose}>
                  Close
                </button>
              </div>
            </div>
          ) : denying ? (
            <ReasonForm
              label="Why deny it? (the requester sees this)"
              submitLabel="Deny with passkey"
              busy={action.busy}
              onSubmit={(reason) => void deny(reason)}
              onCancel={() => setDenying(false)}
            />
          ) : (
            <div className="stacked">
              <label htmlFor={commentId}>Comment (optional)</label>
              <input
                id={commentId}
                value={comment}
                onChange={(event) => setComment(event.target.value)}
                maxLength={2000}
              />
              <RubberStampHint openedAt={openedAt} />
              <div className="actions">
                <button type="button" onClick={() => void approve()} disabled={action.busy}>
                  Approve with passkey
                </button>
                <button
                  type="button"
                  className="danger"
                  onClick={() => setDenying(true)}
                  disabled={action.busy}
                >
                  Deny…
                </button>
                <button type="button" className="secondary" onClick={onClose} disabled={action.busy}>
                  Close
                </button>
              </div>
            </div>
          )}
        </>
      )}
      <ErrorMessage error={action.error} focus />
    </section>
  );
}
