// `/me/notifications`: where notifications reach the person (an e-mail address, changed only with a passkey
// step-up) and whether they want e-mail at all. Security notices (break-glass, passkeys, recovery,
// suspension) are sent whatever the preference says. Messages carry a link to the request page only.
import { useEffect, useState, type FormEvent } from 'react';
import { api, type Me } from './api';
import { ErrorMessage, Notice } from './messages';
import { postWithBoundStepUp } from './step-up';
import { useAction, useApiGet } from './use-api';

interface NotificationSettings {
  email: string | null;
  preferences: { email: boolean };
  channels: Array<{ name: string; type: string }>;
  digestIntervalSeconds: number | null;
}

const CHANNEL_TYPES: Record<string, string> = {
  smtp: 'e-mail to each person',
  slack: 'a shared Slack channel',
  webhook: 'a signed webhook (another system)',
};

export function NotificationsPage() {
  const me = useApiGet<Me>('/api/me');
  const settings = useApiGet<NotificationSettings>('/api/me/notifications');
  const [email, setEmail] = useState('');
  const [done, setDone] = useState<string | null>(null);
  const saving = useAction();
  const current = settings.data;
  useEffect(() => setEmail(current?.email ?? ''), [current?.email]);

  const saveEmail = (event: FormEvent) => {
    event.preventDefault();
    setDone(null);
    void saving.run(async () => {
      const body = { email: email.trim() === '' ? null : email.trim() };
      if (!me.data) throw new Error('Still loading who you are; try again.');
      await postWithBoundStepUp('/api/me/notifications/email', 'user.email', me.data.username, body);
      setDone(body.email ? 'Your e-mail address was saved.' : 'Your e-mail address was removed.');
      settings.reload();
    });
  };
  const setEmailWanted = (wanted: boolean) => {
    setDone(null);
    void saving.run(async () => {
      await api.post('/api/me/notifications/preferences', { email: wanted });
      setDone(wanted ? 'You will get e-mail again.' : 'You will get only security notices by e-mail.');
      settings.reload();
    });
  };

  return (
    <section aria-labelledby="notifications-heading">
      <h1 id="notifications-heading">Notifications</h1>
      <ErrorMessage error={settings.error} />
      <ErrorMessage error={saving.error} focus />
      <Notice focus>{done}</Notice>
      {current && (
        <>
          <form onSubmit={saveEmail}>
            <label htmlFor="notification-email">E-mail address</label>
            <input
              id="notification-email"
              type="email"
              autoComplete="email"
              value={email}
              maxLength={254}
              onChange={(event) => setEmail(event.target.value)}
            />
            <p className="hint">Changing it asks for your passkey.</p>
            <button type="submit" disabled={saving.busy}>
              Save address
            </button>
          </form>
          <fieldset>
            <legend>E-mail</legend>
            <label>
              <input
                type="checkbox"
                checked={current.preferences.email}
                disabled={saving.busy}
                onChange={(event) => setEmailWanted(event.target.checked)}
              />{' '}
              Tell me about requests to approve and about my own requests
            </label>
            <p className="hint">
              Security notices (break-glass use, passkey changes, recovery, suspension) are always sent.
              {current.digestIntervalSeconds
                ? ` Several new requests within ${Math.round(current.digestIntervalSeconds / 60)} min come as one digest.`
                : ''}
            </p>
          </fieldset>
          <h2>Channels of this deployment</h2>
          {current.channels.length === 0 ? (
            <p>No notification channel is configured: nobody is told anything.</p>
          ) : (
            <ul>
              {current.channels.map((channel) => (
                <li key={channel.name}>
                  {channel.name}: {CHANNEL_TYPES[channel.type] ?? channel.type}
                </li>
              ))}
            </ul>
          )}
          <p className="hint">
            A message only links to the request page; approving always needs your passkey there.
          </p>
        </>
      )}
    </section>
  );
}
