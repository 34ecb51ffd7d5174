// `/enroll?invite=<token>`: the one way in for a new person (DESIGN §5). The token is read once and
// removed from the address bar and history, so it is not left behind in the browser.
import { startRegistration, type PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/browser';
import { useEffect, useState } from 'react';
import { api, type SignedIn } from './api';
import { ErrorMessage } from './messages';
import { Link } from './router';
import { useAction } from './use-api';

export function EnrollPage({ onSignedIn }: { onSignedIn: () => Promise<void> }) {
  const [invite] = useState(() => new URLSearchParams(location.search).get('invite'));
  const enrollment = useAction();

  useEffect(() => {
    if (location.search) history.replaceState(null, '', '/enroll');
  }, []);

  if (!invite) {
    return (
      <section>
        <h1>Enroll</h1>
        <p>
          This page needs the one-time enrollment link an administrator sent you. If you already have a
          passkey, <Link to="/login">sign in</Link>.
        </p>
      </section>
    );
  }

  const enroll = () =>
    enrollment.run(async () => {
      const options = await api.post<PublicKeyCredentialCreationOptionsJSON>('/api/auth/enroll/options', {
        invite,
      });
      const response = await startRegistration({ optionsJSON: options });
      await api.post<SignedIn>('/api/auth/enroll/verify', { invite, response });
      await onSignedIn();
    });

  return (
    <section>
      <h1>Enroll</h1>
      <p>
        Create a passkey on this device to finish enrolling. You will use it to sign in and to confirm
        approvals and activations. The link works once.
      </p>
      <button type="button" onClick={() => void enroll()} disabled={enrollment.busy}>
        {enrollment.busy ? 'Waiting for your passkey…' : 'Create passkey'}
      </button>
      <ErrorMessage error={enrollment.error} />
    </section>
  );
}
