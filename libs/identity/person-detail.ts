import type { EntityManager } from 'typeorm';
import type { UserRole, UserStatus } from '../db/index.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { groupsOf } from '../domain/policy.js';
import { toAuthenticatorView } from './authenticators.service.js';
import { authenticatorsOf } from './authenticator-store.js';
import { policyInForce } from './invites.js';

/** A live session as an admin sees it: never its token. */
export interface PersonSession {
  id: string;
  authenticatorId: string | null;
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
  ip: string | null;
  userAgent: string | null;
}

/** One person as an admin looks at them (`/admin/people`): groups from the policy in force, roles, passkeys, sessions. */
export interface PersonDetail {
  id: string;
  username: string;
  displayName: string;
  roles: UserRole[];
  status: UserStatus;
  groups: string[];
  /** Not removed; disabled ones included, with when and why. */
  authenticators: Array<ReturnType<typeof toAuthenticatorView>>;
  /** Neither ended nor expired. */
  sessions: PersonSession[];
}

/** The person named `username`; 404 USER_NOT_FOUND otherwise. */
export async function personDetail(manager: EntityManager, username: string): Promise<PersonDetail> {
  const [user] = (await manager.query(
    `SELECT id, username, display_name AS "displayName", roles, status FROM users WHERE username = $1`,
    [username],
  )) as Array<Omit<PersonDetail, 'groups' | 'authenticators' | 'sessions'>>;
  if (!user) throw new DomainError(ErrorCode.USER_NOT_FOUND, `No user "${username}"`);
  const sessions = (await manager.query(
    `SELECT id, authenticator_id AS "authenticatorId", created_at AS "createdAt", last_seen_at AS "lastSeenAt",
            expires_at AS "expiresAt", ip, user_agent AS "userAgent"
       FROM sessions WHERE user_id = $1 AND ended_at IS NULL AND expires_at > now() ORDER BY created_at DESC`,
    [user.id],
  )) as Array<Omit<PersonSession, 'createdAt' | 'lastSeenAt' | 'expiresAt'> & Record<string, Date>>;
  return {
    ...user,
    groups: groupsOf(await policyInForce(manager), username),
    authenticators: (await authenticatorsOf(manager, user.id)).map(toAuthenticatorView),
    sessions: sessions.map((session) => ({
      ...session,
      createdAt: session.createdAt.toISOString(),
      lastSeenAt: session.lastSeenAt.toISOString(),
      expiresAt: session.expiresAt.toISOString(),
    })),
  };
}
