// The shell: who is signed in, which page the path names, and the navigation around it.
import { useCallback, useEffect, useState, type ReactNode } from 'react';
import { AdminPage } from './admin-page';
import { api, ApiError, describeError, whenSignedOut, type Me } from './api';
import { ApprovalsPage } from './approvals-page';
import { EnrollPage } from './enroll-page';
import { HomePage } from './home-page';
import { LoginPage } from './login-page';
import { ErrorMessage } from './messages';
import { PasskeysPage } from './passkeys-page';
import { RecoveryNotices } from './recovery-notice';
import { ReviewsPage } from './reviews-page';
import { Link, navigate, usePathname } from './router';
import { useAction } from './use-api';

/** Pages that work without a session. */
const PUBLIC_PATHS = new Set(['/enroll', '/login']);

export function App() {
  const path = usePathname();
  // undefined: not asked yet; null: nobody is signed in.
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [loadError, setLoadError] = useState<string | null>(null);
  const isPublic = PUBLIC_PATHS.has(path);

  const loadMe = useCallback(async () => {
    try {
      setMe(await api.get<Me>('/api/me'));
      setLoadError(null);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) setMe(null);
      else setLoadError(describeError(error));
    }
  }, []);

  useEffect(() => whenSignedOut(() => setMe(null)), []);

  useEffect(() => {
    if (!isPublic && me === undefined) void loadMe();
  }, [isPublic, me, loadMe]);

  useEffect(() => {
    if (!isPublic && me === null) navigate('/login', { replace: true });
  }, [isPublic, me]);

  const signedIn = useCallback(async () => {
    await loadMe();
    navigate('/', { replace: true });
  }, [loadMe]);

  if (path === '/enroll')
    return (
      <Frame>
        <EnrollPage onSignedIn={signedIn} />
      </Frame>
    );
  if (path === '/login')
    return (
      <Frame>
        <LoginPage onSignedIn={signedIn} />
      </Frame>
    );
  if (!me) {
    return (
      <Frame>
        {loadError ? (
          <>
            <ErrorMessage error={`Could not reach the broker: ${loadError}`} />
            <button type="button" onClick={() => void loadMe()}>
              Try again
            </button>
          </>
        ) : (
          <p className="muted">Loading…</p>
        )}
      </Frame>
    );
  }
  return (
    <Frame me={me} onSignedOut={() => setMe(null)}>
      <RecoveryNotices notices={me.recoveryNotices ?? []} onAcknowledged={loadMe} />
      {pageFor(path, me)}
    </Frame>
  );
}

function pageFor(path: string, me: Me): ReactNode {
  switch (path) {
    case '/':
      return <HomePage me={me} />;
    case '/approvals':
      return <ApprovalsPage />;
    case '/reviews':
      return <ReviewsPage />;
    case '/me/passkeys':
      return <PasskeysPage me={me} />;
    case '/admin':
      return <AdminPage me={me} />;
    default:
      return (
        <section>
          <h1>Page not found</h1>
          <p>
            <Link to="/">Go to your requests</Link>
          </p>
        </section>
      );
  }
}

function Frame({ me, onSignedOut, children }: { me?: Me; onSignedOut?: () => void; children: ReactNode }) {
  const logout = useAction();
  const signOut = () =>
    logout.run(async () => {
      await api.post('/api/auth/logout', {});
      onSignedOut?.();
      navigate('/login', { replace: true });
    });
  return (
    <>
      <header className="top">
        <span className="brand">JIT access</span>
        {me && (
          <nav aria-label="Main">
            <Link to="/">Requests</Link>
            <Link to="/approvals">Approvals</Link>
            <Link to="/reviews">Reviews</Link>
            <Link to="/me/passkeys">Passkeys</Link>
            {me.roles.includes('admin') && <Link to="/admin">Admin</Link>}
          </nav>
        )}
        {me && (
          <span className="who">
            <span data-testid="signed-in-as">{me.username}</span>
            <button type="button" className="secondary" onClick={() => void signOut()} disabled={logout.busy}>
              Sign out
            </button>
          </span>
        )}
      </header>
      <main>
        <ErrorMessage error={logout.error} />
        {children}
      </main>
    </>
  );
}
