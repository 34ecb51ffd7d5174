// The credential behind a request as the connector last confirmed it: a revoke is REVOKING until the
// connector confirms it, REVOKED from that moment, REVOKE_FAILED (with the error) while it keeps failing.
import type { GrantStatus as Grant } from './api';
import { formatClock, formatTime } from './time';

function detail(grant: Grant): string {
  switch (grant.state) {
    case 'REVOKING':
      return grant.revokeAttempts === 0
        ? 'Being revoked: the connector has not confirmed yet.'
        : `Not revoked yet: ${grant.revokeAttempts} attempt(s) failed; next try ${formatClock(grant.nextRetryAt)}.`;
    case 'REVOKED':
      return `Revoked ${formatTime(grant.revokedAt)}.`;
    case 'REVOKE_FAILED':
      return `Revocation failed after ${grant.revokeAttempts} attempts; still retrying. Operators are alerted.`;
    default:
      return '';
  }
}

/** Under a request's state: where its credential stands, once it is no longer simply active. */
export function GrantStatus({ grant }: { grant: Grant | null | undefined }) {
  if (!grant || grant.state === 'ACTIVE') return null;
  return (
    <div className="grant-status">
      <span
        className={`state grant-${grant.state.toLowerCase().replace('_', '-')}`}
        data-grant-state={grant.state}
      >
        credential {grant.state.replace('_', ' ').toLowerCase()}
      </span>
      <span className="muted"> {detail(grant)}</span>
      {grant.state !== 'REVOKED' && grant.lastError && (
        <span className="muted" title={grant.lastError}>
          {' '}
          Last error: {grant.lastError}
        </span>
      )}
    </div>
  );
}
