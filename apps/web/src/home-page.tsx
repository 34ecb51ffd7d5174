// `/`: who am I, what may I ask for, and my requests through their life: file, activate, cancel, revoke.
import { useEffect, useState } from 'react';
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
import { ErrorMessage } from './messages';
import { ReasonForm } from './reason-form';
import { RequestForm } from './request-form';
import { Link } from './router';
import { decideWithStepUp } from './step-up';
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
  useLiveEvents(requests.refresh);
  // A revoke the connector has not confirmed yet: look again until it has (or has failed for good).
  const revoking = mine?.some((item) => item.grant?.state === 'REVOKING') ?? false;
  const refreshRequests = requests.refresh;
  useEffect(() => {
    if (!revoking) return;
    const timer = setTimeout(refreshRequests, REVOKING_POLL_MS);
    return () => clearTimeout(timer);
  }, [revoking, requests.data, refreshRequests]);

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
                    {[item.eligible && 'request', item.approver && 'approve', item.reviewer && 'review']
                      .filter(Boolean)
                      .join(', ')}
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
