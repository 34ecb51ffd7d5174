// `/login`: discoverable-credential sign-in; the passkey says who you are, so there is no username field.
import { startAuthentication, type PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/browser';
import { api, type SignedIn } from './api';
import { ErrorMessage, Notice } from './messages';
import { useAction } from './use-api';

export function LoginPage({ onSignedIn }: { onSignedIn: () => Promise<void> }) {
  const login = useAction();
  const query = new URLSearchParams(location.search);
  const signIn = () =>
    login.run(async () => {
      const options = await api.post<PublicKeyCredentialRequestOptionsJSON>('/api/auth/login/options', {});
      const response = await startAuthentication({ optionsJSON: options });
      await api.post<SignedIn>('/api/auth/login/verify', { response });
      await onSignedIn();
    });
  return (
    <section>
      <h1>Sign in</h1>
      <Notice>{query.get('signedOut') ? 'You have signed out.' : null}</Notice>
      {query.get('next') && <p>Sign in to continue to the page you opened.</p>}
      <p>Sign in with the passkey you created when you enrolled.</p>
      <button type="button" onClick={() => void signIn()} disabled={login.busy}>
        {login.busy ? 'Waiting for your passkey…' : 'Sign in with a passkey'}
      </button>
      <ErrorMessage error={login.error} />
      <p className="muted">New here? Open the enrollment link an administrator sent you.</p>
    </section>
  );
}
