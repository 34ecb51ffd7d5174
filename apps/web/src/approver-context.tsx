// What an approver sees before the passkey prompt besides the request itself: the requester's recent
// requests (as far as the approver may see them) and a hint against approving unread.
import { useEffect, useState } from 'react';
import type { ElevationRequest, Page } from './api';
import { formatTime } from './time';
import { useApiGet } from './use-api';

/** The broker flags approvals given this soon after opening (RUBBER_STAMP_SECONDS, 10 by default). */
const RUBBER_STAMP_SECONDS = 10;
const RECENT = 5;

/** The requester's latest other requests that the approver may see, with how many were denied. */
export function RequesterHistory({
  request,
  titleOf,
}: {
  request: ElevationRequest;
  titleOf: (entitlementId: string) => string;
}) {
  // The list endpoint applies the visibility rules: only requests this approver may see at all.
  const listed = useApiGet<Page<ElevationRequest>>('/api/requests?limit=100');
  const others = (listed.data?.items ?? []).filter(
    (item) => item.requesterId === request.requesterId && item.id !== request.id,
  );
  if (!listed.data) return null;
  const denied = others.filter((item) => item.state === 'DENIED').length;
  const who = request.requester ?? 'The requester';
  return (
    <div className="hint" data-testid="requester-history">
      <p>
        {others.length === 0
          ? `${who} has no other requests you can see.`
          : `${who}'s other requests you can see: ${others.length}, of which ${denied} denied. Latest:`}
      </p>
      {others.length > 0 && (
        <ul className="decisions">
          {others.slice(0, RECENT).map((item) => (
            <li key={item.id}>
              {titleOf(item.entitlementId)} — {item.state}, {formatTime(item.createdAt)}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** While the request was opened only seconds ago: a reminder that a hasty approval is flagged. */
export function RubberStampHint({ openedAt }: { openedAt: number }) {
  const [elapsed, setElapsed] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => setElapsed(Math.floor((Date.now() - openedAt) / 1000)), 1000);
    return () => clearInterval(timer);
  }, [openedAt]);
  if (elapsed >= RUBBER_STAMP_SECONDS) return null;
  return (
    <p className="hint muted" data-testid="rubber-stamp-hint">
      You opened this {elapsed} s ago. An approval within {RUBBER_STAMP_SECONDS} s of opening is recorded as
      possibly unread: read the justification and scope first.
    </p>
  );
}
