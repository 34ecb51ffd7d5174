// The shell: who is signed in, which page the path names, and the navigation around it.
import { useCallback, useEffect, useState, type ReactNode } from 'react';
import { AdminPage } from './admin-page';
import { api, ApiError, describeError, whenSignedOut, type Me } from './api';
import { ApprovalsPage } from './approvals-page';
import { EnrollPage } from './enroll-page';
import { HomePage } from './home-page';
import { startLive, stopLive } from './live';
import { LoginPage } from './login-page';
import { Frame } from './frame';
import { ErrorMessage } from './messages';
import { PasskeysPage } from './passkeys-page';
import { RecoveryNotices } from './recovery-notice';
import { ReviewsPage } from './reviews-page';
import { Link, matchRoute, navigate, usePathname } from './router';
import { RequestPage } from './request-page';

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

  // Live updates while someone is signed in (the stream is the session's).
  const signedInId = me?.id;
  useEffect(() => {
    if (signedInId) startLive();
    else stopLive();
  }, [signedInId]);

  useEffect(() => {
    if (!isPublic && me === undefined) void loadMe();
  }, [isPublic, me, loadMe]);

  // A deep link survives sign-in: the sign-in page comes back to it.
  useEffect(() => {
    if (isPublic || me !== null) return;
    const here = location.pathname + location.search;
    navigate(here === '/' ? '/login' : `/login?next=${encodeURIComponent(here)}`, { replace: true });
  }, [isPublic, me]);

  const signedIn = useCallback(async () => {
    await loadMe();
    navigate(nextAfterSignIn(), { replace: true });
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

/** Where sign-in goes on: the `next` path the sign-in page was sent with, if it is one of ours. */
function nextAfterSignIn(): string {
  const next = new URLSearchParams(location.search).get('next');
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/login') ? next : '/';
}

function pageFor(path: string, me: Me): ReactNode {
  const routed = matchRoute(path);
  if (routed) return routed.route.page(routed.params);
  const requestId = /^\/requests\/([^/]+)$/.exec(path)?.[1];
  if (requestId) return <RequestPage key={requestId} id={decodeURIComponent(requestId)} me={me} />;
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
