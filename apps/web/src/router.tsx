// A router on location.pathname (no hash): pushState to move, popstate for back/forward.
import { useSyncExternalStore, type MouseEvent, type ReactNode } from 'react';
import { AdminAccessPage } from './admin-access-page';
import { AdminPeoplePage } from './admin-people-page';
import { AdminPersonPage } from './admin-person-page';
import { AdminWorkloadsPage } from './admin-workloads-page';
import { AuditChainPage } from './audit-chain-page';
import { AuditEventsPage } from './audit-events-page';
import { AuditExportPage } from './audit-export-page';
import { NotificationsPage } from './notifications-page';

const listeners = new Set<() => void>();
/** How many times the app moved to another page without a reload (focus follows only those moves). */
let moves = 0;

function notify(): void {
  for (const listener of listeners) listener();
}

window.addEventListener('popstate', () => {
  moves += 1;
  notify();
});

/** The number of in-app moves so far: 0 on a freshly loaded page. */
export function inAppMoves(): number {
  return moves;
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Goes to `to` (a path, optionally with a query) without reloading the page. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (options.replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  moves += 1;
  notify();
}

/** The current path; re-renders on navigation. */
export function usePathname(): string {
  return useSyncExternalStore(subscribe, () => location.pathname);
}

export function Link({ to, children, className }: { to: string; children: ReactNode; className?: string }) {
  const current = usePathname() === to;
  const onClick = (event: MouseEvent<HTMLAnchorElement>) => {
    // Let the browser handle new-tab and modified clicks.
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(to);
  };
  return (
    <a href={to} onClick={onClick} className={className} aria-current={current ? 'page' : undefined}>
      {children}
    </a>
  );
}

/** Who is looking, as the navigation needs it: roles, and what the policy lets them do as a requester. */
export interface NavAudience {
  roles: readonly string[];
  /** Eligible for at least one entitlement (null while not known yet). */
  canRequest: boolean | null;
  /** Approver of at least one entitlement (null while not known yet). */
  canApprove: boolean | null;
}

/** One link of the main navigation and who sees it. */
export interface NavItem {
  to: string;
  label: string;
  shownTo: (audience: NavAudience) => boolean;
}

/** Shown to holders of `role` (a person with several roles sees the union of their items). */
export const withRole =
  (role: string) =>
  (audience: NavAudience): boolean =>
    audience.roles.includes(role);

/**
 * The main navigation, in order. A workspace item (Audit, Admin, People, Access) is shown by role; a requester
 * item only to someone the policy lets use it, so an auditor who may request nothing sees no "My requests".
 * A page for a role adds its item here and its route to ROUTES.
 */
export const NAV_ITEMS: readonly NavItem[] = [
  { to: '/', label: 'Requests', shownTo: (audience) => audience.canRequest === true },
  { to: '/approvals', label: 'Approvals', shownTo: (audience) => audience.canApprove === true },
  { to: '/reviews', label: 'Reviews', shownTo: (audience) => audience.canApprove === true },
  { to: '/audit', label: 'Audit', shownTo: withRole('auditor') },
  { to: '/admin', label: 'Admin', shownTo: withRole('admin') },
  { to: '/admin/people', label: 'People', shownTo: withRole('admin') },
  { to: '/admin/access', label: 'Access', shownTo: withRole('admin') },
  {
    to: '/admin/workloads',
    label: 'Workloads',
    shownTo: (audience) => audience.roles.includes('admin') || audience.roles.includes('auditor'),
  },
  { to: '/me/passkeys', label: 'Passkeys', shownTo: () => true },
  { to: '/me/notifications', label: 'Notifications', shownTo: () => true },
];

/** The navigation items `audience` sees. */
export function navItemsFor(audience: NavAudience): NavItem[] {
  return NAV_ITEMS.filter((item) => item.shownTo(audience));
}

/** A page reached by a path pattern (`/requests/:id/chain`); `page` renders it with the path's parameters. */
export interface Route {
  pattern: string;
  title: string;
  page: (params: Readonly<Record<string, string>>) => ReactNode;
}

/**
 * Pages routed by pattern (the older pages are still switched in app.tsx). `page` is called at render time,
 * so the page modules, which import this one for Link and navigate, are read by then.
 */
export const ROUTES: readonly Route[] = [
  { pattern: '/audit', title: 'Audit events', page: () => <AuditEventsPage /> },
  { pattern: '/admin/people', title: 'People', page: () => <AdminPeoplePage /> },
  {
    pattern: '/admin/people/:username',
    title: 'Person',
    page: ({ username }) => <AdminPersonPage key={username} username={username} />,
  },
  { pattern: '/admin/access', title: 'Access now', page: () => <AdminAccessPage /> },
  { pattern: '/admin/workloads', title: 'Workloads', page: () => <AdminWorkloadsPage /> },
  { pattern: '/audit/export', title: 'Export the audit trail', page: () => <AuditExportPage /> },
  { pattern: '/me/notifications', title: 'Notifications', page: () => <NotificationsPage /> },
  {
    pattern: '/requests/:id/chain',
    title: 'Approval chain',
    page: ({ id }) => <AuditChainPage key={id} id={id} />,
  },
];

/** The route whose pattern matches `path`, with its decoded parameters; null when none does. */
export function matchRoute(path: string): { route: Route; params: Record<string, string> } | null {
  const parts = path.split('/');
  for (const route of ROUTES) {
    const pattern = route.pattern.split('/');
    if (pattern.length !== parts.length) continue;
    const params: Record<string, string> = {};
    const matches = pattern.every((segment, index) => {
      if (!segment.startsWith(':')) return segment === parts[index];
      if (parts[index] === '') return false;
      try {
        params[segment.slice(1)] = decodeURIComponent(parts[index]);
        return true;
      } catch {
        return false;
      }
    });
    if (matches) return { route, params };
  }
  return null;
}
