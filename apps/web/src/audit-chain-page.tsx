// `/requests/:id/chain`: one request's approval chain as a timeline for the auditor: requested → each
// approval or denial with its passkey and a re-checked binding → activated → revoked or expired with the
// measured lag; the signed bundle to download and the command that verifies it offline.
import { api } from './api';
import type { ChainStep, RequestChain } from './audit-types';
import { downloadBlob, verifyCommand } from './audit-types';
import { CopyButton } from './copy-button';
import { ErrorMessage } from './messages';
import { Link } from './router';
import { formatTime } from './time';
import { useAction, useApiGet } from './use-api';

export function AuditChainPage({ id }: { id: string }) {
  const loaded = useApiGet<RequestChain>(`/api/audit/requests/${encodeURIComponent(id)}/chain`);
  const chain = loaded.data;
  return (
    <section aria-labelledby="chain-heading" data-request-id={id}>
      <p>
        <Link to={`/audit?requestId=${encodeURIComponent(id)}`}>← Events of this request</Link>
      </p>
      <h1 id="chain-heading">Approval chain</h1>
      <ErrorMessage error={loaded.error} />
      {chain && (
        <>
          <RequestSummary chain={chain} />
          <h2>Timeline</h2>
          <ol className="chain" data-testid="chain">
            {chain.steps.map((step) => (
              <ChainStepItem key={step.seq} step={step} chain={chain} />
            ))}
          </ol>
          <BundleDownload id={id} />
        </>
      )}
    </section>
  );
}

function RequestSummary({ chain }: { chain: RequestChain }) {
  const { request } = chain;
  const decisions = chain.steps.filter((step) => step.kind === 'approval' || step.kind === 'denial');
  const verified = decisions.filter((step) => step.binding?.verified).length;
  return (
    <dl className="facts">
      <dt>Request</dt>
      <dd>
        <Link to={`/requests/${request.id}`}>
          <code>{request.id}</code>
        </Link>
      </dd>
      <dt>Entitlement</dt>
      <dd>
        <code>{request.entitlementId}</code>
      </dd>
      <dt>State</dt>
      <dd>
        <span className={`state state-${request.state.toLowerCase()}`} data-state={request.state}>
          {request.state}
        </span>
      </dd>
      <dt>Decisions</dt>
      <dd data-testid="binding-summary">
        {decisions.length === 0
          ? 'None recorded'
          : `${verified} of ${decisions.length} step-up binding${decisions.length === 1 ? '' : 's'} verified`}
      </dd>
    </dl>
  );
}

const STEP_TITLES: Record<string, string> = {
  requested: 'Requested',
  approval: 'Approved',
  denial: 'Denied',
  approved: 'Quorum reached',
  denied: 'Request denied',
  activated: 'Activated',
  issued: 'Credential issued',
  revoked: 'Revoke asked',
  'credential-revoked': 'Credential revoked',
  'revoke-failed': 'Revoke failed',
  ended: 'Ended',
  expired: 'Expired',
};

function ChainStepItem({ step, chain }: { step: ChainStep; chain: RequestChain }) {
  const title = STEP_TITLES[step.kind] ?? step.action;
  return (
    <li data-kind={step.kind} data-seq={step.seq} data-testid={`step-${step.kind}`}>
      <p className="chain-head">
        <strong>{title}</strong> by <span data-testid="step-actor">{step.actor}</span>{' '}
        <time dateTime={step.at} className="muted">
          {formatTime(step.at)}
        </time>
      </p>
      <StepFacts step={step} chain={chain} />
      {step.binding && <Binding step={step} />}
      <p className="muted chain-hash">
        Event {step.seq} <code>{step.action}</code>, hash <code>{step.hash.slice(0, 16)}…</code>
      </p>
    </li>
  );
}

/** What matters about each kind of step, in words. */
function StepFacts({ step, chain }: { step: ChainStep; chain: RequestChain }) {
  const details = step.details;
  const text = (key: string) =>
    details[key] === undefined || details[key] === null ? null : String(details[key]);
  switch (step.kind) {
    case 'requested':
      return (
        <dl className="facts">
          <dt>Justification</dt>
          <dd>{text('justification') ?? '—'}</dd>
          <dt>Ticket</dt>
          <dd>{text('ticket') ?? '—'}</dd>
          <dt>Policy version</dt>
          <dd>
            <code title="sha256 of the policy in force when it was filed">{text('policyHash') ?? '—'}</code>
          </dd>
        </dl>
      );
    case 'approval':
    case 'denial':
      return step.comment ? (
        <p data-testid="step-comment">“{step.comment}”</p>
      ) : (
        <p className="muted">No comment.</p>
      );
    case 'issued':
      return (
        <p>
          Credential fingerprint <code data-testid="fingerprint">{text('fingerprint')}</code> from{' '}
          {text('connector')}, valid until {formatTime(text('notAfter'))}
        </p>
      );
    case 'activated':
      return <p>Valid until {formatTime(text('notAfter'))}</p>;
    case 'credential-revoked':
      return <p data-testid="revocation-lag">{revocationLag(step, chain)}</p>;
    case 'revoked':
    case 'denied':
    case 'ended':
    case 'expired':
      return text('reason') ? <p>Reason: {text('reason')}</p> : null;
    case 'revoke-failed':
      return <p className="warning">{text('error')}</p>;
    default:
      return null;
  }
}

/** How long the revoke took: from the revoke asked for (early), else from the credential's end. */
function revocationLag(step: ChainStep, chain: RequestChain): string {
  const revokedAt = typeof step.details.revokedAt === 'string' ? step.details.revokedAt : step.at;
  const asked = chain.steps.find((candidate) => candidate.kind === 'revoked' && candidate.seq < step.seq);
  if (asked) {
    return `Confirmed revoked ${formatLag(Date.parse(revokedAt) - Date.parse(asked.at))} after the revoke was asked.`;
  }
  const lagMs = typeof step.details.lagMs === 'number' ? step.details.lagMs : null;
  if (lagMs === null) return `Confirmed revoked at ${formatTime(revokedAt)}.`;
  return lagMs >= 0
    ? `Confirmed revoked ${formatLag(lagMs)} after it expired (lag).`
    : `Confirmed revoked ${formatLag(-lagMs)} before it would have expired.`;
}

function formatLag(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/** The passkey that signed the step-up, and whether its assertion binds this person to this decision. */
function Binding({ step }: { step: ChainStep }) {
  const binding = step.binding!;
  const passkey = binding.authenticatorName ?? 'a passkey';
  return (
    <p className="binding">
      Step-up with {passkey}
      {binding.credentialId && (
        <>
          {' '}
          (credential <code>{binding.credentialId.slice(0, 12)}…</code>)
        </>
      )}
      :{' '}
      {binding.verified ? (
        <span className="binding-ok" data-testid="binding-verified">
          ✓ binding verified
        </span>
      ) : (
        <span className="binding-bad" data-testid="binding-failed">
          ✗ binding not verified: {binding.reason}
        </span>
      )}
    </p>
  );
}

/** GET the signed bundle and hand it to the browser as a file, with the command that verifies it. */
function BundleDownload({ id }: { id: string }) {
  const download = useAction();
  const fileName = `bundle-${id}.json`;
  const save = () =>
    download.run(async () => {
      const bundle = await api.get<unknown>(`/api/audit/requests/${encodeURIComponent(id)}/bundle`);
      downloadBlob(new Blob([JSON.stringify(bundle)], { type: 'application/json' }), fileName);
    });
  const command = verifyCommand(fileName);
  return (
    <>
      <h2>Evidence</h2>
      <p>
        The signed bundle holds this request, its policy version, its credentials and every event above, with
        each step-up assertion; anyone can verify it offline.
      </p>
      <p>
        <button type="button" onClick={() => void save()} disabled={download.busy}>
          Download bundle
        </button>
      </p>
      <ErrorMessage error={download.error} />
      <p>Verify it with:</p>
      <pre className="command" data-testid="verify-command">
        {command}
      </pre>
      <CopyButton text={command} label="Copy the command" />
    </>
  );
}
