// `/reviews`: break-glass uses waiting for an approver's after-the-fact review, most overdue first.
import { useId, useState, type FormEvent } from 'react';
import { api, type ElevationRequest, type Page } from './api';
import { useEntitlements } from './entitlement-names';
import { GrantStatus } from './grant-status';
import { ErrorMessage, Notice } from './messages';
import { formatDuration, formatTime } from './time';
import { useAction, useApiGet } from './use-api';

export function ReviewsPage() {
  const queue = useApiGet<Page<ElevationRequest>>('/api/reviews');
  const [outcome, setOutcome] = useState<string | null>(null);
  const { titleOf } = useEntitlements();
  return (
    <>
      <div className="section-head">
        <h1>Break-glass reviews</h1>
        <button
          type="button"
          className="secondary"
          onClick={() => {
            setOutcome(null);
            queue.reload();
          }}
        >
          Refresh
        </button>
      </div>
      <Notice focus>{outcome}</Notice>
      <ErrorMessage error={queue.error} />
      {queue.data &&
        (queue.data.items.length === 0 ? (
          <p className="muted">No break-glass use waits for your review.</p>
        ) : (
          queue.data.items.map((request) => (
            <Review
              key={request.id}
              request={request}
              title={titleOf(request.entitlementId)}
              onReviewed={() => {
                setOutcome(
                  `Reviewed ${request.requester ?? 'the'}'s break-glass use of ${titleOf(request.entitlementId)}.`,
                );
                queue.reload();
              }}
            />
          ))
        ))}
    </>
  );
}

function Review({
  request,
  title,
  onReviewed,
}: {
  request: ElevationRequest;
  title: string;
  onReviewed: () => void;
}) {
  const id = useId();
  const [comment, setComment] = useState('');
  const action = useAction();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void action.run(async () => {
      await api.post(`/api/requests/${encodeURIComponent(request.id)}/review`, { comment: comment.trim() });
      onReviewed();
    });
  };
  return (
    <article className="panel" data-request-id={request.id}>
      <h2>
        {request.requester ?? request.requesterId}: {title}
        {request.overdue && <span className="badge badge-alert">overdue</span>}
      </h2>
      <dl className="facts">
        <dt>Used at</dt>
        <dd>{formatTime(request.activatedAt)}</dd>
        <dt>Duration</dt>
        <dd>{formatDuration(request.durationSeconds)}</dd>
        <dt>State</dt>
        <dd>
          {request.state}
          <GrantStatus grant={request.grant} />
        </dd>
        <dt>Justification</dt>
        <dd className="prose">{request.justification || '—'}</dd>
        <dt>Ticket</dt>
        <dd>{request.ticket ?? '—'}</dd>
        <dt>Review due</dt>
        <dd>{formatTime(request.reviewDueAt)}</dd>
      </dl>
      <form className="stacked" onSubmit={submit}>
        <label htmlFor={id}>Review comment</label>
        <textarea
          id={id}
          value={comment}
          onChange={(event) => setComment(event.target.value)}
          required
          maxLength={2000}
          rows={2}
        />
        <div>
          <button type="submit" disabled={action.busy || comment.trim() === ''}>
            Mark reviewed
          </button>
        </div>
        <ErrorMessage error={action.error} />
      </form>
    </article>
  );
}
