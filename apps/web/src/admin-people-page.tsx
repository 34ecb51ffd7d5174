// `/admin/people`: invites (pending ones as pending, with expiry, revoke and re-issue; the new link's panel
// names who it is for and stays until dismissed), and people with their roles, passkeys and sessions; each
// person's page (/admin/people/:username) shows their groups, passkeys and sessions and acts on one of them.
// Every change is confirmed with the admin's passkey, bound to exactly the parameters sent.
import { useId, useState, type FormEvent } from 'react';
import { api, type Me } from './api';
import { AdminOnly } from './admin-page';
import { RevocationBanner } from './admin-revocations';
import { CopyButton } from './copy-button';
import { ErrorMessage, Notice } from './messages';
import { ReasonForm } from './reason-form';
import { Link } from './router';
import { postWithBoundStepUp } from './step-up';
import { formatTime } from './time';
import { useAction, useApiGet } from './use-api';

interface UserRow {
  id: string;
  username: string;
  displayName: string | null;
  roles: string[];
  status: 'active' | 'suspended';
  passkeys: number;
  sessions: number;
}

interface Invite {
  /** Who the link is for (filled in by the page, not the broker). */
  username?: string;
  token: string;
  url: string;
  expiresAt: string;
  /** An invite for a privileged user: the link works once a second admin approves it. */
  state?: 'pending-approval';
  inviteId?: string;
}

interface PendingInvite {
  id: string;
  username: string;
  createdBy: string;
  createdAt: string;
  expiresAt: string;
  /** False for a privileged user's first invite. */
  recovery: boolean;
}

const USERNAME_PATTERN = '[a-z0-9][a-z0-9._\\-]{0,63}';

function InviteForm({ onInvited }: { onInvited: (invite: Invite) => void }) {
  const id = useId();
  const [username, setUsername] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [roles, setRoles] = useState<string[]>([]);
  const action = useAction();

  const toggleRole = (role: string, on: boolean) =>
    setRoles((current) => (on ? [...current, role] : current.filter((value) => value !== role)));

  const submit = (event: FormEvent) => {
    event.preventDefault();
    void action.run(async () => {
      const body: Record<string, unknown> = { username: username.trim(), roles: [...roles].sort() };
      if (displayName.trim()) body.displayName = displayName.trim();
      const created = await postWithBoundStepUp<Invite>(
        '/api/admin/invites',
        'invite.create',
        username.trim(),
        body,
      );
      onInvited({ ...created, username: username.trim() });
      setUsername('');
      setDisplayName('');
      setRoles([]);
    });
  };

  return (
    <section aria-labelledby="invite-heading">
      <h2 id="invite-heading">Invite someone</h2>
      <p className="muted">
        Also the way back in for someone who lost every passkey. Group membership comes from the policy file.
      </p>
      <form className="stacked" onSubmit={submit}>
        <label htmlFor={`${id}-username`}>Username</label>
        <input
          id={`${id}-username`}
          value={username}
          onChange={(event) => setUsername(event.target.value)}
          required
          pattern={USERNAME_PATTERN}
          title="lower-case letters, digits, . _ - (at most 64, starting with a letter or digit)"
          autoComplete="off"
        />
        <label htmlFor={`${id}-display`}>Display name (optional)</label>
        <input
          id={`${id}-display`}
          value={displayName}
          onChange={(event) => setDisplayName(event.target.value)}
          maxLength={200}
        />
        <fieldset>
          <legend>Roles</legend>
          {['admin', 'auditor'].map((role) => (
            <label key={role} className="check">
              <input
                type="checkbox"
                checked={roles.includes(role)}
                onChange={(event) => toggleRole(role, event.target.checked)}
              />{' '}
              {role}
            </label>
          ))}
        </fieldset>
        <div>
          <button type="submit" disabled={action.busy}>
            Create invite with passkey
          </button>
        </div>
        <ErrorMessage error={action.error} />
      </form>
    </section>
  );
}

/** Invites for privileged users another admin created; approving one makes its link usable. */
function PendingInvites({ invites, onChanged }: { invites: PendingInvite[]; onChanged: () => void }) {
  const action = useAction();
  const [outcome, setOutcome] = useState<string | null>(null);
  const approve = (invite: PendingInvite) =>
    action.run(async () => {
      await postWithBoundStepUp(`/api/admin/invites/${invite.id}/approve`, 'invite.approve', invite.id, {});
      setOutcome(`The link for ${invite.username} now works.`);
      onChanged();
    });
  return (
    <section aria-labelledby="pending-heading">
      <h2 id="pending-heading">Invites waiting for a second admin</h2>
      <p className="muted">
        Approve only after confirming with the person, over a channel you trust, that they lost their passkeys
        (a recovery) or that they are who the invite names (a first invite).
      </p>
      <Notice>{outcome}</Notice>
      <ErrorMessage error={action.error} />
      <ul>
        {invites.map((invite) => (
          <li key={invite.id}>
            <strong>{invite.username}</strong> ({invite.recovery ? 'recovery' : 'first invite'}), by{' '}
            {invite.createdBy} at {formatTime(invite.createdAt)} (until {formatTime(invite.expiresAt)}){' '}
            <button type="button" disabled={action.busy} onClick={() => void approve(invite)}>
              Approve with passkey
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

function UsersTable({
  users,
  meId,
  invited,
  onChanged,
}: {
  users: UserRow[];
  meId: string;
  /** Usernames with an open invite: shown as pending until they enroll, never as active. */
  invited: ReadonlySet<string>;
  onChanged: () => void;
}) {
  const action = useAction();
  const [changing, setChanging] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<string | null>(null);

  const setStatus = (user: UserRow, reason: string) =>
    action.run(async () => {
      const status = user.status === 'active' ? 'suspended' : 'active';
      await postWithBoundStepUp(
        `/api/admin/users/${encodeURIComponent(user.username)}/status`,
        'user.suspend',
        user.username,
        { status, reason },
      );
      setChanging(null);
      setOutcome(`${user.username} is now ${status}.`);
      onChanged();
    });

  const endSessions = (user: UserRow) =>
    action.run(async () => {
      const { ended } = await api.post<{ ended: number }>(
        `/api/admin/users/${encodeURIComponent(user.username)}/end-sessions`,
        {},
      );
      setOutcome(`Ended ${ended} session(s) of ${user.username}.`);
      onChanged();
    });

  return (
    <>
      <Notice>{outcome}</Notice>
      <ErrorMessage error={action.error} />
      <table>
        <thead>
          <tr>
            <th scope="col">Username</th>
            <th scope="col">Name</th>
            <th scope="col">Roles</th>
            <th scope="col">Status</th>
            <th scope="col">Passkeys</th>
            <th scope="col">Sessions</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {users.map((user) => (
            <tr key={user.id}>
              <td data-label="Username">
                <Link to={`/admin/people/${encodeURIComponent(user.username)}`}>{user.username}</Link>
              </td>
              <td data-label="Name">{user.displayName ?? '—'}</td>
              <td data-label="Roles">{user.roles.join(', ') || '—'}</td>
              <td data-label="Status">
                {user.passkeys === 0 && user.status === 'active'
                  ? invited.has(user.username)
                    ? 'invited (pending)'
                    : 'not enrolled'
                  : user.status}
              </td>
              <td data-label="Passkeys">{user.passkeys}</td>
              <td data-label="Sessions">{user.sessions}</td>
              <td className="actions">
                {user.sessions > 0 && (
                  <button type="button" disabled={action.busy} onClick={() => void endSessions(user)}>
                    End sessions
                  </button>
                )}{' '}
                {user.id === meId ? (
                  <span className="muted">you</span>
                ) : changing === user.id ? (
                  <ReasonForm
                    label={user.status === 'active' ? 'Why suspend?' : 'Why reinstate?'}
                    submitLabel={user.status === 'active' ? 'Suspend with passkey' : 'Reinstate with passkey'}
                    busy={action.busy}
                    onSubmit={(reason) => void setStatus(user, reason)}
                    onCancel={() => setChanging(null)}
                  />
                ) : (
                  <button
                    type="button"
                    className={user.status === 'active' ? 'danger' : undefined}
                    onClick={() => setChanging(user.id)}
                    disabled={action.busy}
                  >
                    {user.status === 'active' ? 'Suspend…' : 'Reinstate…'}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted">
        Suspending ends the person&apos;s sessions, cancels their open requests and revokes their active
        grants at once.
      </p>
    </>
  );
}

/** The new link, naming who it is for; it stays until dismissed (it is shown only once). */
function InvitePanel({ invite, onDismiss }: { invite: Invite; onDismiss: () => void }) {
  return (
    <div className="panel" role="status" data-testid="invite-panel">
      <h3>Enrollment link for {invite.username}</h3>
      <p>
        One use, until {formatTime(invite.expiresAt)}. Send it to {invite.username} over a channel you trust:
        whoever opens it first enrolls as {invite.username}. It is not shown again.
      </p>
      {invite.state === 'pending-approval' && (
        <p>
          {invite.username} would be an admin, an approver, or able to get access without anyone&apos;s
          approval: the link works only once a different admin approves it.
        </p>
      )}
      <p>
        <code data-testid="invite-url">{invite.url}</code> <CopyButton text={invite.url} label="Copy link" />
      </p>
      <button type="button" onClick={onDismiss}>
        Dismiss
      </button>
    </div>
  );
}

/** An unused, unexpired invite as GET /api/admin/invites?state=open lists it. */
interface OpenInvite {
  id: string;
  username: string;
  roles: string[];
  createdBy: string;
  createdAt: string;
  expiresAt: string;
  recovery: boolean;
  state: 'pending-approval' | 'pending';
}

/** Invites not used yet: pending (not active accounts), with expiry, revoke and re-issue. */
function OpenInvites({
  invites,
  onChanged,
  onReissued,
}: {
  invites: OpenInvite[];
  onChanged: () => void;
  onReissued: (invite: Invite) => void;
}) {
  const action = useAction();
  const [outcome, setOutcome] = useState<string | null>(null);
  const revoke = (invite: OpenInvite) =>
    action.run(async () => {
      await api.post(`/api/admin/invites/${invite.id}/revoke`, {});
      setOutcome(`The invite for ${invite.username} is revoked: its link no longer works.`);
      onChanged();
    });
  const reissue = (invite: OpenInvite) =>
    action.run(async () => {
      const body = { username: invite.username, roles: [...invite.roles].sort() };
      const created = await postWithBoundStepUp<Invite>(
        '/api/admin/invites',
        'invite.create',
        invite.username,
        body,
      );
      await api.post(`/api/admin/invites/${invite.id}/revoke`, {});
      onReissued({ ...created, username: invite.username });
      onChanged();
    });
  return (
    <section aria-labelledby="open-invites-heading">
      <h2 id="open-invites-heading">Invites not used yet</h2>
      <Notice>{outcome}</Notice>
      <ErrorMessage error={action.error} />
      {invites.length === 0 && <p>None.</p>}
      <ul data-testid="open-invites">
        {invites.map((invite) => (
          <li key={invite.id}>
            <strong>{invite.username}</strong>{' '}
            <span className="badge">
              {invite.state === 'pending-approval' ? 'pending a second admin' : 'pending enrollment'}
            </span>{' '}
            {invite.recovery ? 'recovery' : 'invite'} by {invite.createdBy}, expires{' '}
            {formatTime(invite.expiresAt)}{' '}
            <button type="button" disabled={action.busy} onClick={() => void revoke(invite)}>
              Revoke
            </button>{' '}
            <button type="button" disabled={action.busy} onClick={() => void reissue(invite)}>
              Re-issue with passkey
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function AdminPeoplePage() {
  return (
    <AdminOnly title="People">
      <People />
    </AdminOnly>
  );
}

function People() {
  const me = useApiGet<Me>('/api/me');
  const users = useApiGet<{ items: UserRow[] }>('/api/admin/users');
  const pending = useApiGet<{ items: PendingInvite[] }>('/api/admin/invites?state=pending-approval');
  const open = useApiGet<{ items: OpenInvite[] }>('/api/admin/invites?state=open');
  const [shown, setShown] = useState<Invite | null>(null);
  const changed = () => {
    users.reload();
    pending.reload();
    open.reload();
  };
  const issued = (invite: Invite) => {
    setShown(invite);
    changed();
  };
  return (
    <>
      <h1>People</h1>
      <RevocationBanner />
      <InviteForm onInvited={issued} />
      {shown && <InvitePanel invite={shown} onDismiss={() => setShown(null)} />}
      <ErrorMessage error={open.error ?? pending.error} />
      {open.data && <OpenInvites invites={open.data.items} onChanged={changed} onReissued={issued} />}
      {pending.data && pending.data.items.length > 0 && (
        <PendingInvites invites={pending.data.items} onChanged={changed} />
      )}
      <section aria-labelledby="users-heading">
        <h2 id="users-heading">People</h2>
        <ErrorMessage error={users.error} />
        {users.data && me.data && (
          <UsersTable
            users={users.data.items}
            meId={me.data.id}
            invited={new Set((open.data?.items ?? []).map((invite) => invite.username))}
            onChanged={changed}
          />
        )}
      </section>
    </>
  );
}
