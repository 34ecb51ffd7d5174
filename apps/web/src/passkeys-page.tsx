// `/me/passkeys`: one's own passkeys. Adding one needs a step-up with an existing one, and so does
// removing one (DESIGN §5); the broker refuses to remove the last usable passkey.
import { startRegistration, type PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/browser';
import { useId, useState, type FormEvent } from 'react';
import { api, type Me, type Page, type Passkey } from './api';
import { ErrorMessage, Notice } from './messages';
import { withPasskeyPrompt } from './passkey-waiting';
import { stepUp } from './step-up';
import { formatTime } from './time';
import { useAction, useApiGet } from './use-api';

export function PasskeysPage({ me }: { me: Me }) {
  const passkeys = useApiGet<Page<Passkey>>('/api/me/authenticators');
  const action = useAction();
  const nameId = useId();
  const [name, setName] = useState('');
  const [outcome, setOutcome] = useState<string | null>(null);

  const add = (event: FormEvent) => {
    event.preventDefault();
    setOutcome(null);
    void action.run(async () => {
      const proof = await stepUp('authenticator.add', me.username, {});
      const options = await api.post<PublicKeyCredentialCreationOptionsJSON>(
        '/api/me/authenticators/options',
        {
          stepUp: proof,
        },
      );
      const response = await withPasskeyPrompt(() => startRegistration({ optionsJSON: options }));
      await api.post(
        '/api/me/authenticators/verify',
        name.trim() ? { response, name: name.trim() } : { response },
      );
      setName('');
      setOutcome('Passkey added.');
      passkeys.reload();
    });
  };

  const remove = (passkey: Passkey) => {
    setOutcome(null);
    void action.run(async () => {
      const proof = await stepUp('authenticator.remove', me.username, { authenticatorId: passkey.id });
      await api.post(`/api/me/authenticators/${encodeURIComponent(passkey.id)}/remove`, { stepUp: proof });
      setOutcome('Passkey removed.');
      passkeys.reload();
    });
  };

  return (
    <>
      <h1>Your passkeys</h1>
      <ErrorMessage error={passkeys.error} />
      <ErrorMessage error={action.error} />
      <Notice>{outcome}</Notice>
      {passkeys.data && (
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Added</th>
              <th scope="col">Last used</th>
              <th scope="col">Kind</th>
              <th scope="col">Status</th>
              <th scope="col">
                <span className="visually-hidden">Remove</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {passkeys.data.items.map((passkey) => (
              <tr key={passkey.id}>
                <td data-label="Name">{passkey.name ?? 'Passkey'}</td>
                <td data-label="Added">{formatTime(passkey.createdAt)}</td>
                <td data-label="Last used">{formatTime(passkey.lastUsedAt)}</td>
                <td data-label="Kind">{passkey.backupEligible ? 'synced' : 'device-bound'}</td>
                <td data-label="Status">
                  {passkey.disabledAt
                    ? `disabled ${formatTime(passkey.disabledAt)}${passkey.disabledReason ? `: ${passkey.disabledReason}` : ''}`
                    : 'active'}
                </td>
                <td>
                  <button
                    type="button"
                    className="danger"
                    onClick={() => remove(passkey)}
                    disabled={action.busy}
                    aria-label={`Remove passkey ${passkey.name ?? 'added ' + formatTime(passkey.createdAt)}`}
                  >
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h2>Add a passkey</h2>
      <p className="muted">Confirm with a passkey you already have, then create the new one.</p>
      <form className="stacked" onSubmit={add}>
        <label htmlFor={nameId}>Name (optional)</label>
        <input
          id={nameId}
          value={name}
          onChange={(event) => setName(event.target.value)}
          maxLength={64}
          placeholder="e.g. work laptop"
        />
        <div>
          <button type="submit" disabled={action.busy}>
            Add a passkey
          </button>
        </div>
      </form>
    </>
  );
}
