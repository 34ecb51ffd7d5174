// `/`: who am I, what may I ask for, and my requests through their life: file, activate, cancel, revoke.
import { useEffect, useId, useState, type FormEvent } from 'react';
import {
  api,
  type Activation,
  type Credential,
  type ElevationRequest,
  type Entitlement,
  type Me,
  type Page,
} from './api';
import { Deadline } from './countdown';
import { CredentialOnce } from './credential-once';
import { GrantStatus } from './grant-status';
import { ErrorMessage, Notice } from './messages';
import { ReasonForm } from './reason-form';
import { Link } from './router';
import { decideWithStepUp, postWithBoundStepUp } from './step-up';
import { useLiveEvents, useServerNow } from './live';
import { formatDuration, formatTime, stateByNow } from './time';
import { useAction, useApiGet } from './use-api';

const REVOKING_POLL_MS = 2000;

export function HomePage({ me }: { me: Me }) {
  const entitlements = useApiGet<{ policyHash: string; items: Entitlement[] }>('/api/entitlements');
  const requests = useApiGet<Page<ElevationRequest>>('/api/requests?limit=100');
  const [credential, setCredential] = useState<Credential | null>(null);
  const eligible = entitlements.data?.items.filter((item) => item.eligible) ?? [];
  // Approvers and admins also see requests they may decide; this page is about one's own.
  const mine = requests.data?.items.filter((item) => item.requesterId === me.id);
  // Any change to a request this person may see, or a poll while the live stream is down.
  useLiveEvents(requests.reload);
  // A revoke the connector has not confirmed yet: look again until it has (or has failed for good).
  const revoking = mine?.some((item) => item.grant?.state === 'REVOKING') ?? false;
  const reloadRequests = requests.reload;
  useEffect(() => {
    if (!revoking) return;
    const timer = setTimeout(reloadRequests, REVOKING_POLL_MS);
    return () => clearTimeout(timer);
  }, [revoking, requests.data, reloadRequests]);

  const titleOf = (id: string) => entitlements.data?.items.find((item) => item.id === id)?.title ?? id;

  const showCredential = (activation: Activation) => {
    setCredential(activation.credential);
    requests.reload();
  };

  return (
    <>
      <section aria-labelledby="me-heading">
        <h1 id="me-heading">{me.displayName ?? me.username}</h1>
        <dl className="facts">
          <dt>Username</dt>
          <dd>{me.username}</dd>
          <dt>Roles</dt>
          <dd>{me.roles.length > 0 ? me.roles.join(', ') : 'none'}</dd>
          <dt>Groups</dt>
          <dd>{me.groups.length > 0 ? me.groups.join(', ') : 'none'}</dd>
        </dl>
      </section>

      {credential && <CredentialOnce credential={credential} onDone={() => setCredential(null)} />}

      <section aria-labelledby="file-heading">
        <h2 id="file-heading">Ask for access</h2>
        <ErrorMessage error={entitlements.error} />
        {entitlements.data &&
          (eligible.length > 0 ? (
            <RequestForm entitlements={eligible} onFiled={requests.reload} onBreakGlass={showCredential} />
          ) : (
            <p className="muted">The policy makes you eligible for no entitlement.</p>
          ))}
      </section>

      <section aria-labelledby="mine-heading">
        <div className="section-head">
          <h2 id="mine-heading">My requests</h2>
          <button type="button" className="secondary" onClick={requests.reload}>
            Refresh
          </button>
        </div>
        <ErrorMessage error={requests.error} />
        {mine && (
          <MyRequests
            items={mine}
            titleOf={titleOf}
            onChanged={requests.reload}
            onActivated={showCredential}
          />
        )}
      </section>

      {entitlements.data && entitlements.data.items.length > 0 && (
        <section aria-labelledby="entitlements-heading">
          <h2 id="entitlements-heading">Entitlements</h2>
          <table>
            <thead>
              <tr>
                <th scope="col">Entitlement</th>
                <th scope="col">Credential</th>
                <th scope="col">Longest</th>
                <th scope="col">Approval</th>
                <th scope="col">You may</th>
              </tr>
            </thead>
            <tbody>
              {entitlements.data.items.map((item) => (
                <tr key={item.id}>
                  <td data-label="Entitlement">
                    {item.title} <span className="muted">({item.id})</span>
                  </td>
                  <td data-label="Credential">{item.connectorType ?? '—'}</td>
                  <td data-label="Longest">{formatDuration(item.maxDurationSeconds)}</td>
                  <td data-label="Approval">{approvalText(item)}</td>
                  <td data-label="You may">
                    {[item.eligible && 'request', item.approver && 'approve'].filter(Boolean).join(', ')}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </>
  );
}

function approvalText(entitlement: Entitlement): string {
  if (entitlement.breakGlass) return 'break-glass (reviewed afterwards)';
  if (entitlement.selfService) return 'self-service';
  return `${entitlement.approvalsRequired} approval${entitlement.approvalsRequired === 1 ? '' : 's'}`;
}

function RequestForm({
  entitlements,
  onFiled,
  onBreakGlass,
}: {
  entitlements: Entitlement[];
  onFiled: () => void;
  onBreakGlass: (activation: Activation) => void;
}) {
  const id = useId();
  const [entitlementId, setEntitlementId] = useState(entitlements[0].id);
  const [minutes, setMinutes] = useState('');
  const [justification, setJustification] = useState('');
  const [ticket, setTicket] = useState('');
  const [sshPublicKey, setSshPublicKey] = useState('');
  const [startAt, setStartAt] = useState('');
  const [filed, setFiled] = useState<string | null>(null);
  const action = useAction();
  const entitlement = entitlements.find((item) => item.id === entitlementId) ?? entitlements[0];
  const maxMinutes = Math.max(1, Math.floor(entitlement.maxDurationSeconds / 60));
  const defaultMinutes = Math.min(60, maxMinutes);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setFiled(null);
    void action.run(async () => {
      // Only fields with a value: for break-glass this object is also what the step-up signs.
      const body: Record<string, unknown> = {
        entitlementId: entitlement.id,
        durationSeconds: Math.round(Number(minutes || defaultMinutes) * 60),
      };
      if (justification.trim()) body.justification = justification.trim();
      if (ticket.trim()) body.ticket = ticket.trim();
      if (entitlement.connectorType === 'ssh' && sshPublicKey.trim()) body.sshPublicKey = sshPublicKey.trim();
      // A scheduled start, in this browser's time zone; break-glass always starts now.
      if (startAt && !entitlement.breakGlass) body.notBefore = new Date(startAt).toISOString();
      if (entitlement.breakGlass) {
        onBreakGlass(
          await postWithBoundStepUp<Activation>('/api/requests', 'break-glass', entitlement.id, body),
        );
        setFiled('Break-glass access is active; approvers have been told.');
      } else {
        const request = await api.post<ElevationRequest>('/api/requests', body);
        setFiled(
          request.state === 'APPROVED'
            ? 'Filed. It needs no approval: activate it below when you are ready.'
            : `Filed. It waits for ${request.approvalsRequired} approval${request.approvalsRequired === 1 ? '' : 's'}.`,
        );
        onFiled();
      }
      setJustification('');
      setTicket('');
      setStartAt('');
    });
  };

  return (
    <form className="stacked" onSubmit={submit}>
      <label htmlFor={`${id}-entitlement`}>Entitlement</label>
      <select
        id={`${id}-entitlement`}
        value={entitlement.id}
        onChange={(event) => setEntitlementId(event.target.value)}
      >
        {entitlements.map((item) => (
          <option key={item.id} value={item.id}>
            {item.title} ({item.id})
          </option>
        ))}
      </select>

      <label htmlFor={`${id}-minutes`}>Duration in minutes (at most {maxMinutes})</label>
      <input
        id={`${id}-minutes`}
        type="number"
        inputMode="numeric"
        min={1}
        max={maxMinutes}
        step={1}
        placeholder={String(defaultMinutes)}
        value={minutes}
        onChange={(event) => setMinutes(event.target.value)}
      />

      <label htmlFor={`${id}-justification`}>
        Justification{entitlement.requires.justification ? '' : ' (optional)'}
      </label>
      <textarea
        id={`${id}-justification`}
        value={justification}
        onChange={(event) => setJustification(event.target.value)}
        required={entitlement.requires.justification}
        maxLength={2000}
        rows={3}
      />

      <label htmlFor={`${id}-ticket`}>
        Ticket{entitlement.requires.ticketPattern ? '' : ' (optional)'}
        {entitlement.requires.ticketPattern && (
          <span className="muted"> — must match {entitlement.requires.ticketPattern}</span>
        )}
      </label>
      <input
        id={`${id}-ticket`}
        value={ticket}
        onChange={(event) => setTicket(event.target.value)}
        required={entitlement.requires.ticketPattern !== null}
        maxLength={200}
      />

      {entitlement.connectorType === 'ssh' && (
        <>
          <label htmlFor={`${id}-ssh`}>SSH public key to certify</label>
          <textarea
            id={`${id}-ssh`}
            value={sshPublicKey}
            onChange={(event) => setSshPublicKey(event.target.value)}
            required
            rows={2}
            placeholder="ssh-ed25519 AAAA… you@laptop"
          />
        </>
      )}

      {!entitlement.breakGlass && (
        <>
          <label htmlFor={`${id}-start`}>Start at (optional; otherwise when you activate it)</label>
          <input
            id={`${id}-start`}
            type="datetime-local"
            step={60}
            value={startAt}
            onChange={(event) => setStartAt(event.target.value)}
          />
        </>
      )}

      {entitlement.breakGlass && (
        <p className="warning">
          Break-glass is active at once, without approval. Approvers are told immediately and review its use
          afterwards. Your passkey confirms it.
        </p>
      )}
      <div>
        <button type="submit" disabled={action.busy}>
          {entitlement.breakGlass ? 'Use break-glass' : 'Request access'}
        </button>
      </div>
      <ErrorMessage error={action.error} focus />
      <Notice focus>{filed}</Notice>
    </form>
  );
}

type Pending = { requestId: string; kind: 'cancel' | 'revoke' } | null;

/** Which deadline a request faces in its state, in words, and when (none once it is over). */
function deadlineOf(request: ElevationRequest, state: string): { label: string; iso: string | null } | null {
  if (state === 'PENDING') return { label: 'Pending until', iso: request.pendingUntil };
  if (state === 'APPROVED') return { label: 'Activate by', iso: request.activateBy };
  if (request.notAfter) return { label: state === 'ACTIVE' ? 'Ends' : 'Ended', iso: request.notAfter };
  return null;
}

function DeadlineCell({ request, state, now }: { request: ElevationRequest; state: string; now: number }) {
  const deadline = deadlineOf(request, state);
  if (!deadline) return <>—</>;
  return (
    <>
      {deadline.label}: <Deadline iso={deadline.iso} now={now} />
    </>
  );
}

function MyRequests({
  items,
  titleOf,
  onChanged,
  onActivated,
}: {
  items: ElevationRequest[];
  titleOf: (entitlementId: string) => string;
  onChanged: () => void;
  onActivated: (activation: Activation) => void;
}) {
  const action = useAction();
  const [asking, setAsking] = useState<Pending>(null);
  const now = useServerNow();

  if (items.length === 0) return <p className="muted">No requests yet.</p>;

  const activate = (request: ElevationRequest) =>
    action.run(async () => {
      onActivated(await decideWithStepUp<Activation>(request.id, 'activate'));
    });
  const cancel = (requestId: string, reason: string) =>
    action.run(async () => {
      await api.post(`/api/requests/${requestId}/cancel`, reason ? { reason } : {});
      setAsking(null);
      onChanged();
    });
  const revoke = (requestId: string, reason: string) =>
    action.run(async () => {
      await decideWithStepUp(requestId, 'revoke', { reason });
      setAsking(null);
      onChanged();
    });

  return (
    <>
      <ErrorMessage error={action.error} />
      <table>
        <thead>
          <tr>
            <th scope="col">Entitlement</th>
            <th scope="col">State</th>
            <th scope="col">Duration</th>
            <th scope="col">Requested</th>
            <th scope="col">Deadline</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {items
            .map((request) => ({ request, state: stateByNow(request, now) }))
            .map(({ request, state }) => (
              <tr key={request.id} data-request-id={request.id}>
                <td data-label="Entitlement">
                  <Link to={`/requests/${request.id}`}>{titleOf(request.entitlementId)}</Link>
                  {request.breakGlass && <span className="badge">break-glass</span>}
                </td>
                <td data-label="State">
                  <span className={`state state-${state.toLowerCase()}`} data-state={state}>
                    {state}
                  </span>
                  <GrantStatus grant={request.grant} />
                </td>
                <td data-label="Duration">{formatDuration(request.durationSeconds)}</td>
                <td data-label="Requested">{formatTime(request.createdAt)}</td>
                <td data-label="Deadline">
                  <DeadlineCell request={request} state={state} now={now} />
                </td>
                <td className="actions">
                  {asking?.requestId === request.id ? (
                    <ReasonForm
                      label={asking.kind === 'revoke' ? 'Why revoke now?' : 'Reason (optional)'}
                      submitLabel={asking.kind === 'revoke' ? 'Revoke' : 'Cancel request'}
                      required={asking.kind === 'revoke'}
                      busy={action.busy}
                      onSubmit={(reason) =>
                        void (asking.kind === 'revoke'
                          ? revoke(request.id, reason)
                          : cancel(request.id, reason))
                      }
                      onCancel={() => setAsking(null)}
                    />
                  ) : (
                    <>
                      {state === 'APPROVED' && (
                        <button type="button" onClick={() => void activate(request)} disabled={action.busy}>
                          Activate
                        </button>
                      )}
                      {(state === 'PENDING' || state === 'APPROVED') && (
                        <button
                          type="button"
                          className="secondary"
                          onClick={() => setAsking({ requestId: request.id, kind: 'cancel' })}
                          disabled={action.busy}
                        >
                          Cancel…
                        </button>
                      )}
                      {state === 'ACTIVE' && (
                        <button
                          type="button"
                          className="danger"
                          onClick={() => setAsking({ requestId: request.id, kind: 'revoke' })}
                          disabled={action.busy}
                        >
                          Revoke…
                        </button>
                      )}
                    </>
                  )}
                </td>
              </tr>
            ))}
        </tbody>
      </table>
    </>
  );
}
