import type { Credential } from './api';
import { CopyButton } from './copy-button';
import { formatTime } from './time';

const FIELD_LABELS: Record<string, string> = {
  token: 'Access token',
  connectionString: 'Connection string',
  password: 'Password',
  username: 'Username',
  host: 'Host',
  port: 'Port',
  database: 'Database',
  certificate: 'SSH certificate',
};

/**
 * A freshly minted credential. The broker keeps only its fingerprint, so this is the one time anyone sees
 * it: the person copies it now or asks again.
 */
export function CredentialOnce({ credential, onDone }: { credential: Credential; onDone: () => void }) {
  const fields = Object.entries(credential).filter(
    ([name, value]) => name !== 'type' && name !== 'notAfter' && value !== null && value !== undefined,
  );
  return (
    <section className="credential" aria-labelledby="credential-heading">
      <h2 id="credential-heading">Your {credential.type} credential</h2>
      <p className="warning" role="alert">
        Copy it now: it is shown only this once and cannot be shown again. It expires at{' '}
        {formatTime(credential.notAfter)}.
      </p>
      <dl>
        {fields.map(([name, value]) => {
          const text = typeof value === 'string' ? value : JSON.stringify(value);
          const label = FIELD_LABELS[name] ?? name;
          return (
            <div key={name} className="field">
              <dt>{label}</dt>
              <dd>
                <code data-credential-field={name}>{text}</code>
                <CopyButton text={text} label={`Copy ${label.toLowerCase()}`} />
              </dd>
            </div>
          );
        })}
      </dl>
      <button type="button" onClick={onDone}>
        I have copied it
      </button>
    </section>
  );
}
