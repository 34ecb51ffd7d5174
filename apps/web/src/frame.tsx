// The frame around every page: skip link, header with navigation (folded behind a button on phones),
// sign-out, the passkey-waiting line, and the page title and focus that follow navigation.
import { useEffect, useState, type ReactNode } from 'react';
import { api, type Entitlement, type Me } from './api';
import { ErrorMessage } from './messages';
import { PasskeyWaiting } from './passkey-waiting';
import { inAppMoves, Link, matchRoute, navigate, navItemsFor, usePathname, type NavAudience } from './router';
import { useAction, useApiGet } from './use-api';

const TITLES: Record<string, string> = {
  '/': 'My requests',
  '/approvals': 'Approvals',
  '/reviews': 'Break-glass reviews',
  '/me/passkeys': 'Your passkeys',
  '/admin': 'Administration',
  '/login': 'Sign in',
  '/enroll': 'Enroll',
};

/** The document title for a path: one per page (WCAG 2.4.2). */
export function titleFor(path: string): string {
  const page =
    TITLES[path] ??
    matchRoute(path)?.route.title ??
    (path.startsWith('/requests/') ? 'Request' : 'Page not found');
  return `${page} — JIT access`;
}

/** Titles the page and, after an in-app move (not a page load), moves focus to its heading. */
function useTitleAndFocus(path: string): void {
  useEffect(() => {
    document.title = titleFor(path);
    if (inAppMoves() === 0) return;
    const frame = requestAnimationFrame(() => {
      const heading = document.querySelector<HTMLElement>('main h1') ?? document.getElementById('main');
      if (!heading) return;
      if (!heading.hasAttribute('tabindex')) heading.setAttribute('tabindex', '-1');
      heading.focus();
    });
    return () => cancelAnimationFrame(frame);
  }, [path]);
}

/** What the navigation needs to know about `me`: roles, and (once loaded) what the policy lets them do. */
function useNavAudience(me: Me | undefined): NavAudience {
  const entitlements = useApiGet<{ items: Entitlement[] }>(me ? '/api/entitlements' : null);
  const items = entitlements.data?.items;
  return {
    roles: me?.roles ?? [],
    canRequest: items ? items.some((item) => item.eligible) : null,
    canApprove: items ? items.some((item) => item.approver) : null,
  };
}

/**
 * `/` is the requester's page: someone the policy lets request nothing (a pure auditor or admin) lands on
 * their first navigation item instead.
 */
function useLanding(path: string, audience: NavAudience): void {
  const landing = path === '/' && audience.canRequest === false ? navItemsFor(audience)[0]?.to : undefined;
  useEffect(() => {
    if (landing && landing !== '/') navigate(landing, { replace: true });
  }, [landing]);
}

/** Unseen approvals and waiting reviews for an approver's navigation, refetched on every move (issue 18). */
function useUnread(approver: boolean, path: string): Record<string, number> {
  const unread = useApiGet<{ approvals: number; reviews: number }>(approver ? '/api/me/unread' : null);
  const reload = unread.reload;
  useEffect(() => reload(), [path, reload]);
  return { '/approvals': unread.data?.approvals ?? 0, '/reviews': unread.data?.reviews ?? 0 };
}

export function Frame({
  me,
  onSignedOut,
  children,
}: {
  me?: Me;
  onSignedOut?: () => void;
  children: ReactNode;
}) {
  const path = usePathname();
  const logout = useAction();
  const [menuOpen, setMenuOpen] = useState(false);
  const audience = useNavAudience(me);
  const unread = useUnread(me !== undefined && audience.canApprove === true, path);
  useTitleAndFocus(path);
  useLanding(path, audience);
  useEffect(() => setMenuOpen(false), [path]);
  const signOut = () =>
    logout.run(async () => {
      await api.post('/api/auth/logout', {});
      navigate('/login?signedOut=1', { replace: true });
      onSignedOut?.();
    });
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">JIT access</span>
        {me && (
          <button
            type="button"
            className="secondary menu-toggle"
            aria-expanded={menuOpen}
            aria-controls="main-nav"
            onClick={() => setMenuOpen((open) => !open)}
          >
            Menu
          </button>
        )}
        {me && (
          <nav id="main-nav" aria-label="Main" className={menuOpen ? 'open' : undefined}>
            {navItemsFor(audience).map((item) => (
              <Link key={item.to} to={item.to}>
                {item.label}
                {unread[item.to] ? <span className="badge"> ({unread[item.to]} new)</span> : null}
              </Link>
            ))}
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
      <main id="main" tabIndex={-1}>
        <ErrorMessage error={logout.error} />
        {children}
      </main>
      <PasskeyWaiting />
    </>
  );
}
