// The banner every admin page carries while a grant's revocation is stuck (REVOKE_FAILED, or REVOKING well
// past its end): a credential that should be gone may still work, so it names the grants and offers a retry.
import { useState } from 'react';
import { Notice, ErrorMessage } from './messages';
import { stepUp } from './step-up';
import { api } from './api';
import { formatTime } from './time';
import { useAction, useApiGet } from './use-api';

/** A grant as GET /api/admin/grants lists it. */
export interface AdminGrant {
  id: string;
  requestId: string;
  connector: string;
  connectorType: string;
  fingerprint: string;
  issuedAt: string;
  notAfter: string;
  state: 'ACTIVE' | 'REVOKING' | 'REVOKED' | 'REVOKE_FAILED';
  revokedAt: string | null;
  revokeAttempts: number;
  lastError: string | null;
  nextRetryAt: string | null;
  requester: string;
  entitlementId: string;
}

/** How long a REVOKING grant may stay past its end before it counts as overdue. */
export const OVERDUE_AFTER_MS = 60_000;

/** True when the grant's revocation is stuck: failed, or still not confirmed a minute after its end. */
export function revocationStuck(grant: AdminGrant, now: number): boolean {
  if (grant.state === 'REVOKE_FAILED') return true;
  return grant.state !== 'REVOKED' && Date.parse(grant.notAfter) + OVERDUE_AFTER_MS < now;
}

/** Retries one grant's revocation with a `grant.retry-revoke` step-up bound to the grant id. */
export async function retryRevocation(grantId: string): Promise<void> {
  const proof = await stepUp('grant.retry-revoke', grantId, {});
  await api.post(`/api/admin/grants/${encodeURIComponent(grantId)}/retry-revocation`, { stepUp: proof });
}

/** The stuck-revocation banner (nothing while every revocation is healthy). */
export function RevocationBanner({ onRetried }: { onRetried?: () => void }) {
  const failed = useApiGet<{ items: AdminGrant[] }>('/api/admin/grants?state=REVOKE_FAILED&limit=200');
  const revoking = useApiGet<{ items: AdminGrant[] }>('/api/admin/grants?state=REVOKING&limit=200');
  const action = useAction();
  const [outcome, setOutcome] = useState<string | null>(null);
  const now = Date.now();
  const stuck = [...(failed.data?.items ?? []), ...(revoking.data?.items ?? [])].filter((grant) =>
    revocationStuck(grant, now),
  );
  const retry = (grant: AdminGrant) =>
    action.run(async () => {
      await retryRevocation(grant.id);
      setOutcome(`Revocation of ${grant.requester}'s ${grant.entitlementId} grant tried again.`);
      failed.reload();
      revoking.reload();
      onRetried?.();
    });
  if (stuck.length === 0) return <Notice>{outcome}</Notice>;
  return (
    <section
      className="banner alert"
      role="alert"
      aria-labelledby="stuck-heading"
      data-testid="revoke-banner"
    >
      <h2 id="stuck-heading">
        {stuck.length === 1 ? 'A grant could not be revoked' : `${stuck.length} grants could not be revoked`}
      </h2>
      <p>Its credential may still work. Fix the connector, then retry.</p>
      <ul>
        {stuck.map((grant) => (
          <li key={grant.id}>
            <strong>{grant.requester}</strong> · {grant.entitlementId} · {grant.state}, ended{' '}
            {formatTime(grant.notAfter)}, {grant.revokeAttempts} attempt(s)
            {grant.lastError && <> — {grant.lastError}</>}{' '}
            <button type="button" disabled={action.busy} onClick={() => void retry(grant)}>
              Retry revocation with passkey
            </button>
          </li>
        ))}
      </ul>
      <ErrorMessage error={action.error} />
      <Notice>{outcome}</Notice>
    </section>
  );
}
