// `/admin`: invites, suspending and reinstating people, and reloading the policy; each change is confirmed
// with the admin's passkey, bound to exactly the parameters sent.
import { useId, useState, type FormEvent } from 'react';
import type { Me } from './api';
import { CopyButton } from './copy-button';
import { ErrorMessage, Notice } from './messages';
import { ReasonForm } from './reason-form';
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

export function AdminPage({ me }: { me: Me }) {
  if (!me.roles.includes('admin')) {
    return (
      <section>
        <h1>Administration</h1>
        <p>This page is for admins.</p>
      </section>
    );
  }
  return <Administration />;
}

function Administration() {
  const users = useApiGet<{ items: UserRow[] }>('/api/admin/users');
  const pending = useApiGet<{ items: PendingInvite[] }>('/api/admin/invites?state=pending-approval');
  return (
    <>
      <h1>Administration</h1>
      <InviteForm
        onInvited={() => {
          users.reload();
          pending.reload();
        }}
      />
      <ErrorMessage error={pending.error} />
      {pending.data && pending.data.items.length > 0 && (
        <PendingInvites invites={pending.data.items} onChanged={pending.reload} />
      )}
      <section aria-labelledby="users-heading">
        <h2 id="users-heading">People</h2>
        <ErrorMessage error={users.error} />
        {users.data && <UsersTable users={users.data.items} onChanged={users.reload} />}
      </section>
      <PolicySection />
    </>
  );
}

const USERNAME_PATTERN = '[a-z0-9][a-z0-9._\\-]{0,63}';

function InviteForm({ onInvited }: { onInvited: () => void }) {
  const id = useId();
  const [username, setUsername] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [roles, setRoles] = useState<string[]>([]);
  const [invite, setInvite] = useState<Invite | null>(null);
  const action = useAction();

  const toggleRole = (role: string, on: boolean) =>
    setRoles((current) => (on ? [...current, role] : current.filter((value) => value !== role)));

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setInvite(null);
    void action.run(async () => {
      const body: Record<string, unknown> = { username: username.trim(), roles: [...roles].sort() };
      if (displayName.trim()) body.displayName = displayName.trim();
      setInvite(
        await postWithBoundStepUp<Invite>('/api/admin/invites', 'invite.create', username.trim(), body),
      );
      setUsername('');
      setDisplayName('');
      setRoles([]);
      onInvited();
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
      {invite && (
        <div className="panel" role="status">
          <p>
            Enrollment link (one use, until {formatTime(invite.expiresAt)}). Send it over a channel you trust:
            whoever opens it first enrolls.
          </p>
          {invite.state === 'pending-approval' && (
            <p>
              This person would be an admin, an approver, or able to get access without anyone&apos;s
              approval: the link works only once a different admin approves it under “Invites waiting for a
              second admin”.
            </p>
          )}
          <p>
            <code data-testid="invite-url">{invite.url}</code>{' '}
            <CopyButton text={invite.url} label="Copy link" />
          </p>
        </div>
      )}
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

function UsersTable({ users, onChanged }: { users: UserRow[]; onChanged: () => void }) {
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
              <td data-label="Username">{user.username}</td>
              <td data-label="Name">{user.displayName ?? '—'}</td>
              <td data-label="Roles">{user.roles.join(', ') || '—'}</td>
              <td data-label="Status">{user.status}</td>
              <td data-label="Passkeys">{user.passkeys}</td>
              <td data-label="Sessions">{user.sessions}</td>
              <td className="actions">
                {changing === user.id ? (
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

function PolicySection() {
  const versions = useApiGet<{ inForce: string }>('/api/admin/policies');
  const action = useAction();
  const [outcome, setOutcome] = useState<string | null>(null);
  const reload = () =>
    action.run(async () => {
      setOutcome(null);
      const loaded = await postWithBoundStepUp<{ hash: string; changed: boolean; entitlements: number }>(
        '/api/admin/policies/reload',
        'policy.reload',
        'policy',
        {},
      );
      setOutcome(
        loaded.changed
          ? `New policy in force (${loaded.entitlements} entitlements), hash ${loaded.hash}.`
          : 'The policy files have not changed; the version in force stays.',
      );
      versions.reload();
    });
  return (
    <section aria-labelledby="policy-heading">
      <h2 id="policy-heading">Policy</h2>
      <ErrorMessage error={versions.error} />
      {versions.data && (
        <p>
          In force: <code>{versions.data.inForce}</code>
        </p>
      )}
      <p className="muted">
        Reload reads the policy directory again; an invalid file is refused and the current version stays.
      </p>
      <button type="button" onClick={() => void reload()} disabled={action.busy}>
        Reload policy with passkey
      </button>
      <ErrorMessage error={action.error} />
      <Notice>{outcome}</Notice>
    </section>
  );
}
