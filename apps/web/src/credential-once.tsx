// The one-time credential, in a modal dialog that takes focus: the broker keeps only its fingerprint, so
// this is the one time anyone sees it. Escape asks before closing; once the grant ends the secret is hidden.
import { useEffect, useRef, useState, type KeyboardEvent, type SyntheticEvent } from 'react';
import type { Credential } from './api';
import { CopyButton } from './copy-button';
import { readyToRunHint } from './credential-hint';
import { useServerNow } from './live';
import { formatTime, timeLeft } from './time';

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

export function CredentialOnce({ credential, onDone }: { credential: Credential; onDone: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const [confirming, setConfirming] = useState(false);
  const now = useServerNow();
  const left = timeLeft(credential.notAfter, now);

  useEffect(() => {
    const element = dialog.current!;
    if (!element.open) element.showModal();
    heading.current?.focus();
    return () => element.close();
  }, []);

  // Escape (and the browser's own close request) asks first: closing loses the credential for good.
  const askFirst = (event: SyntheticEvent) => {
    event.preventDefault();
    setConfirming(true);
  };
  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key === 'Escape') askFirst(event);
  };

  return (
    <dialog
      ref={dialog}
      className="credential"
      aria-labelledby="credential-heading"
      onCancel={askFirst}
      onKeyDown={onKeyDown}
      data-testid="credential-dialog"
    >
      <h2 id="credential-heading" ref={heading} tabIndex={-1}>
        Your {credential.type} credential
      </h2>
      {left ? (
        <CredentialFields credential={credential} left={left} />
      ) : (
        <p className="notice" role="status">
          This credential ended at {formatTime(credential.notAfter)} and no longer works; it is hidden.
        </p>
      )}
      {confirming ? (
        <div className="confirm" role="group" aria-label="Close without storing it?">
          <p className="warning">Close without storing it? It cannot be shown again.</p>
          <div className="actions">
            <button type="button" className="danger" onClick={onDone}>
              Close it
            </button>
            <button type="button" autoFocus onClick={() => setConfirming(false)}>
              Keep it open
            </button>
          </div>
        </div>
      ) : (
        <button type="button" onClick={onDone}>
          I have stored it
        </button>
      )}
    </dialog>
  );
}

function CredentialFields({ credential, left }: { credential: Credential; left: string }) {
  const fields = Object.entries(credential).filter(
    ([name, value]) => name !== 'type' && name !== 'notAfter' && value !== null && value !== undefined,
  );
  const hint = readyToRunHint(credential);
  return (
    <>
      <p className="warning">
        Store it now: it is shown only this once and cannot be shown again. It expires at{' '}
        {formatTime(credential.notAfter)} (<span data-testid="credential-time-left">{left}</span>).
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
      {hint && (
        <div className="field">
          <p>{hint.intro}</p>
          <code data-credential-hint={credential.type}>{hint.command}</code>
          <CopyButton text={hint.command} label="Copy the command" />
        </div>
      )}
    </>
  );
}
