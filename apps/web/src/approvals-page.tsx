// `/approvals`: requests waiting for the signed-in approver. Opening one records that it was read (the
// broker flags approvals given without reading); approve and deny each take a passkey step-up bound to it.
import { useId, useState } from 'react';
import type { ElevationRequest, Page } from './api';
import { ErrorMessage, Notice } from './messages';
import { ReasonForm } from './reason-form';
import { decideWithStepUp } from './step-up';
import { formatDuration, formatTime } from './time';
import { useAction, useApiGet } from './use-api';

export function ApprovalsPage() {
  const inbox = useApiGet<Page<ElevationRequest>>('/api/approvals/inbox');
  const [openId, setOpenId] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<string | null>(null);

  const decided = (request: ElevationRequest, decision: 'approve' | 'deny') => {
    setOpenId(null);
    setOutcome(
      `${decision === 'approve' ? 'Approved' : 'Denied'} ${request.requester ?? 'the'}'s request for ${request.entitlementId}: it is now ${request.state}.`,
    );
    inbox.reload();
  };

  return (
    <>
      <div className="section-head">
        <h1>Approvals</h1>
        <button type="button" className="secondary" onClick={inbox.reload}>
          Refresh
        </button>
      </div>
      <Notice>{outcome}</Notice>
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
                  <td>{request.requester ?? request.requesterId}</td>
                  <td>{request.entitlementId}</td>
                  <td>{formatDuration(request.durationSeconds)}</td>
                  <td>{formatTime(request.createdAt)}</td>
                  <td>{formatTime(request.pendingUntil)}</td>
                  <td>
                    <button
                      type="button"
                      onClick={() => {
                        setOutcome(null);
                        setOpenId(request.id);
                      }}
                      aria-label={`Open the request by ${request.requester ?? 'unknown'} for ${request.entitlementId}`}
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

  const approve = () =>
    action.run(async () => {
      const body = comment.trim() ? { comment: comment.trim() } : {};
      onDecided(await decideWithStepUp<ElevationRequest>(id, 'approve', body), 'approve');
    });
  const deny = (reason: string) =>
    action.run(async () => {
      onDecided(await decideWithStepUp<ElevationRequest>(id, 'deny', { reason }), 'deny');
    });

  return (
    <section className="panel" aria-labelledby="decide-heading" data-request-id={id}>
      <h2 id="decide-heading">Request {request ? `by ${request.requester ?? request.requesterId}` : ''}</h2>
      <ErrorMessage error={loaded.error} />
      {request && (
        <>
          <dl className="facts">
            <dt>Entitlement</dt>
            <dd>{request.entitlementId}</dd>
            <dt>Scope</dt>
            <dd>
              <code>{JSON.stringify(request.scope)}</code>
            </dd>
            <dt>Duration</dt>
            <dd>{formatDuration(request.durationSeconds)}</dd>
            <dt>Justification</dt>
            <dd className="prose">{request.justification || '—'}</dd>
            <dt>Ticket</dt>
            <dd>{request.ticket ?? '—'}</dd>
            <dt>Starts</dt>
            <dd>{request.notBefore ? formatTime(request.notBefore) : 'when activated'}</dd>
            <dt>Approvals needed</dt>
            <dd>{request.approvalsRequired}</dd>
            <dt>State</dt>
            <dd>{request.state}</dd>
          </dl>
          {denying ? (
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
      <ErrorMessage error={action.error} />
    </section>
  );
}
