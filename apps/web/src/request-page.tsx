// `/requests/:id`: one request for its requester and its approvers: state, decisions so far (and why it
// was denied), the timeline, and the requester's next steps: activate, cancel, extend, request again.
import { useId, useState, type FormEvent } from 'react';
import {
  api,
  type Activation,
  type Credential,
  type ElevationRequest,
  type Entitlement,
  type Me,
} from './api';
import { Deadline } from './countdown';
import { CredentialOnce } from './credential-once';
import { useEntitlements } from './entitlement-names';
import { useLiveEvents, useServerNow } from './live';
import { ErrorMessage, Notice } from './messages';
import { Decisions, DenialReason, ScopeView, Timeline, When } from './request-parts';
import { Link, navigate } from './router';
import { decideWithStepUp } from './step-up';
import { formatDuration, stateByNow } from './time';
import { useAction, useApiGet } from './use-api';
import { requesterName, WorkloadBadge, WorkloadFacts } from './workload-parts';

const FINISHED = new Set(['DENIED', 'EXPIRED', 'CANCELLED', 'ENDED', 'REVOKED']);

export function RequestPage({ id, me }: { id: string; me: Me }) {
  const loaded = useApiGet<ElevationRequest>(`/api/requests/${encodeURIComponent(id)}`);
  const entitlements = useEntitlements();
  const now = useServerNow();
  const [credential, setCredential] = useState<Credential | null>(null);
  useLiveEvents((event) => {
    if (event.requestId === null || event.requestId === id) loaded.refresh();
  });
  const request = loaded.data;
  const entitlement = request ? entitlements.find(request.entitlementId) : undefined;
  const title = request ? entitlements.titleOf(request.entitlementId) : null;
  const state = request ? stateByNow(request, now) : null;

  return (
    <section aria-labelledby="request-heading" data-request-id={id}>
      <p>
        <Link to="/">← My requests</Link>
      </p>
      <h1 id="request-heading">{title ? `Request for ${title}` : 'Request'}</h1>
      {entitlement?.description && <p className="muted">{entitlement.description}</p>}
      <ErrorMessage error={loaded.error} />
      {credential && <CredentialOnce credential={credential} onDone={() => setCredential(null)} />}
      {request && state && (
        <>
          <p>
            <span className={`state state-${state.toLowerCase()}`} data-state={state}>
              {state}
            </span>
            {request.breakGlass && <span className="badge">break-glass</span>}
            <WorkloadBadge request={request} />
          </p>
          <DenialReason request={request} />
          <Decisions request={request} />
          <RequestFacts request={request} entitlement={entitlement} now={now} />
          {request.requesterId === me.id ? (
            <RequesterActions
              request={request}
              state={state}
              entitlement={entitlement}
              onChanged={loaded.reload}
              onActivated={(activation) => {
                setCredential(activation.credential);
                loaded.reload();
              }}
            />
          ) : (
            state === 'PENDING' && (
              <p>
                <Link to="/approvals">Decide on it in Approvals</Link>
              </p>
            )
          )}
          <h2>Timeline</h2>
          <Timeline request={request} now={now} />
        </>
      )}
    </section>
  );
}

function RequestFacts({
  request,
  entitlement,
  now,
}: {
  request: ElevationRequest;
  entitlement: Entitlement | undefined;
  now: number;
}) {
  return (
    <dl className="facts">
      <dt>Requester</dt>
      <dd>{requesterName(request)}</dd>
      <WorkloadFacts request={request} />
      <dt>Entitlement</dt>
      <dd>
        {entitlement?.title ?? request.entitlementId} <span className="muted">({request.entitlementId})</span>
      </dd>
      <dt>Scope</dt>
      <dd>
        <ScopeView scope={request.scope} />
      </dd>
      <dt>Duration</dt>
      <dd>{formatDuration(request.durationSeconds)}</dd>
      <dt>{request.workload ? 'Task' : 'Justification'}</dt>
      <dd className="prose">{request.justification || '—'}</dd>
      <dt>Ticket</dt>
      <dd>{request.ticket ?? '—'}</dd>
      <dt>Starts</dt>
      <dd>{request.notBefore ? <When iso={request.notBefore} now={now} /> : 'when activated'}</dd>
      {request.state === 'PENDING' && <dt>Pending until</dt>}
      {request.state === 'PENDING' && (
        <dd>
          <Deadline iso={request.pendingUntil} now={now} />
        </dd>
      )}
      {request.state === 'APPROVED' && <dt>Activate by</dt>}
      {request.state === 'APPROVED' && (
        <dd>
          <Deadline iso={request.activateBy} now={now} />
        </dd>
      )}
      {request.notAfter && <dt>Ends</dt>}
      {request.notAfter && (
        <dd>
          <Deadline iso={request.notAfter} now={now} />
        </dd>
      )}
    </dl>
  );
}

function RequesterActions({
  request,
  state,
  entitlement,
  onChanged,
  onActivated,
}: {
  request: ElevationRequest;
  state: string;
  entitlement: Entitlement | undefined;
  onChanged: () => void;
  onActivated: (activation: Activation) => void;
}) {
  const action = useAction();
  const activate = () =>
    action.run(async () => onActivated(await decideWithStepUp<Activation>(request.id, 'activate')));
  const cancel = () =>
    action.run(async () => {
      await api.post(`/api/requests/${request.id}/cancel`, {});
      onChanged();
    });
  const again = () =>
    action.run(async () => {
      const body: Record<string, unknown> = {
        entitlementId: request.entitlementId,
        durationSeconds: request.durationSeconds,
      };
      if (request.justification) body.justification = request.justification;
      if (request.ticket) body.ticket = request.ticket;
      if (request.sshPublicKey) body.sshPublicKey = request.sshPublicKey;
      const filed = await api.post<ElevationRequest>('/api/requests', body);
      navigate(`/requests/${filed.id}`);
    });
  return (
    <>
      <div className="actions">
        {state === 'APPROVED' && (
          <button type="button" onClick={() => void activate()} disabled={action.busy}>
            Activate
          </button>
        )}
        {(state === 'PENDING' || state === 'APPROVED') && (
          <button type="button" className="secondary" onClick={() => void cancel()} disabled={action.busy}>
            Cancel request
          </button>
        )}
        {FINISHED.has(state) && !request.breakGlass && (
          <button type="button" className="secondary" onClick={() => void again()} disabled={action.busy}>
            Request again
          </button>
        )}
      </div>
      <ErrorMessage error={action.error} focus />
      {state === 'ACTIVE' && !request.breakGlass && !request.extendsRequestId && (
        <ExtendForm request={request} entitlement={entitlement} />
      )}
    </>
  );
}

/** More time on an active request, up to what the entitlement's longest duration leaves from activation. */
function ExtendForm({
  request,
  entitlement,
}: {
  request: ElevationRequest;
  entitlement: Entitlement | undefined;
}) {
  const id = useId();
  const [minutes, setMinutes] = useState('');
  const [justification, setJustification] = useState('');
  const [filed, setFiled] = useState<ElevationRequest | null>(null);
  const action = useAction();
  const capSeconds =
    entitlement && request.activatedAt && request.notAfter
      ? Date.parse(request.activatedAt) + entitlement.maxDurationSeconds * 1000 - Date.parse(request.notAfter)
      : null;
  const capMinutes = capSeconds === null ? null : Math.floor(capSeconds / 60_000);
  if (capMinutes !== null && capMinutes < 1) {
    return (
      <p className="muted">
        This request already runs as long as the entitlement allows: it cannot be extended.
      </p>
    );
  }
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void action.run(async () => {
      const body: Record<string, unknown> = { durationSeconds: Math.round(Number(minutes) * 60) };
      if (justification.trim()) body.justification = justification.trim();
      setFiled(await api.post<ElevationRequest>(`/api/requests/${request.id}/extend`, body));
    });
  };
  return (
    <form className="stacked" onSubmit={submit} aria-labelledby={`${id}-heading`}>
      <h2 id={`${id}-heading`}>Extend</h2>
      <label htmlFor={`${id}-minutes`}>
        More minutes{capMinutes !== null ? ` (at most ${capMinutes} more)` : ''}
      </label>
      <input
        id={`${id}-minutes`}
        type="number"
        inputMode="numeric"
        min={1}
        max={capMinutes ?? undefined}
        required
        value={minutes}
        onChange={(event) => setMinutes(event.target.value)}
      />
      <label htmlFor={`${id}-justification`}>Why more time? (optional)</label>
      <input
        id={`${id}-justification`}
        value={justification}
        onChange={(event) => setJustification(event.target.value)}
        maxLength={2000}
      />
      <div>
        <button type="submit" disabled={action.busy}>
          Ask for more time
        </button>
      </div>
      <ErrorMessage error={action.error} focus />
      <Notice>{filed ? `Extension filed: it is ${filed.state}.` : null}</Notice>
      {filed && <Link to={`/requests/${filed.id}`}>Open the extension</Link>}
    </form>
  );
}
