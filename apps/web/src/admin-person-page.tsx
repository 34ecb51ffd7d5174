// `/admin/people/:username`: one person as an admin looks at them: groups (from the policy in force), roles,
// their passkeys (disable one, confirmed with the admin's passkey and bound to exactly that passkey and
// reason) and their live sessions (end one, or all).
import { useState } from 'react';
import { api, type Me, type Passkey } from './api';
import { AdminOnly } from './admin-page';
import { RevocationBanner } from './admin-revocations';
import { ErrorMessage, Notice } from './messages';
import { ReasonForm } from './reason-form';
import { Link } from './router';
import { postWithBoundStepUp } from './step-up';
import { formatTime } from './time';
import { useAction, useApiGet } from './use-api';

interface PersonSession {
  id: string;
  authenticatorId: string | null;
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
  ip: string | null;
  userAgent: string | null;
}

interface Person {
  id: string;
  username: string;
  displayName: string | null;
  roles: string[];
  status: 'active' | 'suspended';
  groups: string[];
  authenticators: Array<Passkey & { credentialId: string }>;
  sessions: PersonSession[];
}

const passkeyName = (passkey: Passkey) => passkey.name ?? `Passkey from ${formatTime(passkey.createdAt)}`;

function disabledOutcome(
  username: string,
  passkey: Passkey,
  done: { sessionsEnded: number; lastUsable: boolean },
): string {
  const said = `${passkeyName(passkey)} is disabled; ${done.sessionsEnded} session(s) it opened ended.`;
  return done.lastUsable ? `${said} ${username} has no usable passkey left: send a recovery invite.` : said;
}

/** The name of the passkey a session was opened with. */
function sessionPasskey(person: Person, session: PersonSession): string {
  const passkey = person.authenticators.find((item) => item.id === session.authenticatorId);
  return passkey ? passkeyName(passkey) : '—';
}

/** The reason for disabling a passkey, with a warning when it is the person's last usable one. */
function DisableForm(props: {
  username: string;
  last: boolean;
  busy: boolean;
  onSubmit: (reason: string) => void;
  onCancel: () => void;
}) {
  return (
    <>
      {props.last && (
        <p role="alert">
          This is {props.username}&apos;s last usable passkey: they will not be able to sign in until they
          enroll again from a recovery invite.
        </p>
      )}
      <ReasonForm
        label="Why disable it?"
        submitLabel="Disable with passkey"
        busy={props.busy}
        onSubmit={props.onSubmit}
        onCancel={props.onCancel}
      />
    </>
  );
}

function Passkeys({ person, isMe, onChanged }: { person: Person; isMe: boolean; onChanged: () => void }) {
  const action = useAction();
  const [disabling, setDisabling] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<string | null>(null);
  const usable = person.authenticators.filter((passkey) => !passkey.disabledAt);

  const disable = (passkey: Passkey, reason: string) =>
    action.run(async () => {
      const path = `/api/admin/users/${encodeURIComponent(person.username)}/authenticators/${passkey.id}/disable`;
      const done = await postWithBoundStepUp<{ sessionsEnded: number; lastUsable: boolean }>(
        path,
        'authenticator.disable',
        passkey.id,
        { reason },
      );
      setDisabling(null);
      setOutcome(disabledOutcome(person.username, passkey, done));
      onChanged();
    });

  return (
    <section aria-labelledby="person-passkeys">
      <h2 id="person-passkeys">Passkeys</h2>
      <Notice>{outcome}</Notice>
      <ErrorMessage error={action.error} />
      {isMe && <p className="muted">Your own passkeys are managed on your Passkeys page.</p>}
      {person.authenticators.length === 0 && <p>None.</p>}
      <ul data-testid="person-passkeys">
        {person.authenticators.map((passkey) => (
          <li key={passkey.id}>
            <strong>{passkeyName(passkey)}</strong> (added {formatTime(passkey.createdAt)} by{' '}
            {passkey.enrolledVia}, last used {formatTime(passkey.lastUsedAt)}){' '}
            {passkey.disabledAt ? (
              <span className="badge">
                disabled {formatTime(passkey.disabledAt)}: {passkey.disabledReason}
              </span>
            ) : isMe ? null : disabling === passkey.id ? (
              <DisableForm
                username={person.username}
                last={usable.length === 1}
                busy={action.busy}
                onSubmit={(reason) => void disable(passkey, reason)}
                onCancel={() => setDisabling(null)}
              />
            ) : (
              <button
                type="button"
                className="danger"
                disabled={action.busy}
                onClick={() => setDisabling(passkey.id)}
              >
                Disable…
              </button>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

function SessionRow(props: { session: PersonSession; via: string; busy: boolean; onEnd: () => void }) {
  const { session } = props;
  return (
    <tr>
      <td data-label="Started">{formatTime(session.createdAt)}</td>
      <td data-label="Last seen">{formatTime(session.lastSeenAt)}</td>
      <td data-label="Ends by">{formatTime(session.expiresAt)}</td>
      <td data-label="Passkey">{props.via}</td>
      <td data-label="From" title={session.userAgent ?? undefined}>
        {session.ip ?? '—'}
      </td>
      <td className="actions">
        <button type="button" disabled={props.busy} onClick={props.onEnd}>
          End session
        </button>
      </td>
    </tr>
  );
}

function Sessions({ person, onChanged }: { person: Person; onChanged: () => void }) {
  const action = useAction();
  const [outcome, setOutcome] = useState<string | null>(null);
  const base = `/api/admin/users/${encodeURIComponent(person.username)}`;
  const endOne = (session: PersonSession) =>
    action.run(async () => {
      await api.post(`${base}/sessions/${session.id}/end`, {});
      setOutcome(`The session started ${formatTime(session.createdAt)} has ended.`);
      onChanged();
    });
  const endAll = () =>
    action.run(async () => {
      const { ended } = await api.post<{ ended: number }>(`${base}/end-sessions`, {});
      setOutcome(`Ended ${ended} session(s) of ${person.username}.`);
      onChanged();
    });
  return (
    <section aria-labelledby="person-sessions">
      <h2 id="person-sessions">Sessions</h2>
      <Notice>{outcome}</Notice>
      <ErrorMessage error={action.error} />
      {person.sessions.length === 0 ? (
        <p>No live session.</p>
      ) : (
        <table data-testid="person-sessions">
          <thead>
            <tr>
              <th scope="col">Started</th>
              <th scope="col">Last seen</th>
              <th scope="col">Ends by</th>
              <th scope="col">Passkey</th>
              <th scope="col">From</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {person.sessions.map((session) => (
              <SessionRow
                key={session.id}
                session={session}
                via={sessionPasskey(person, session)}
                busy={action.busy}
                onEnd={() => void endOne(session)}
              />
            ))}
          </tbody>
        </table>
      )}
      {person.sessions.length > 1 && (
        <button type="button" disabled={action.busy} onClick={() => void endAll()}>
          End all {person.sessions.length} sessions
        </button>
      )}
    </section>
  );
}

function PersonDetail({ username }: { username: string }) {
  const me = useApiGet<Me>('/api/me');
  const person = useApiGet<Person>(`/api/admin/users/${encodeURIComponent(username)}`);
  const shown = person.data;
  return (
    <>
      <p>
        <Link to="/admin/people">← People</Link>
      </p>
      <h1>{username}</h1>
      <RevocationBanner />
      <ErrorMessage error={person.error} />
      {shown && me.data && (
        <>
          <dl className="facts">
            <dt>Name</dt>
            <dd>{shown.displayName ?? '—'}</dd>
            <dt>Status</dt>
            <dd>{shown.status}</dd>
            <dt>Roles</dt>
            <dd>{shown.roles.join(', ') || '—'}</dd>
            <dt>Groups</dt>
            <dd>{shown.groups.join(', ') || '—'} (from the policy file)</dd>
          </dl>
          <Passkeys person={shown} isMe={shown.id === me.data.id} onChanged={person.reload} />
          <Sessions person={shown} onChanged={person.reload} />
        </>
      )}
    </>
  );
}

export function AdminPersonPage({ username }: { username: string }) {
  return (
    <AdminOnly title="Person">
      <PersonDetail username={username} />
    </AdminOnly>
  );
}
