import { Inject, Injectable } from '@nestjs/common';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { DataSource, type EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { AuditAction } from '../audit/audit-actions.js';
import { appendAuditEvent } from '../audit/audit-log.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type {
  AuthenticatorEntity,
  CeremonyPurpose,
  EnrolledVia,
  WebauthnCeremonyEntity,
} from '../db/index.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import type { Actor } from '../domain/actor.js';
import {
  authenticationOptions,
  echoedChallenge,
  registrationOptions,
  verifyAssertion,
  verifyRegistration,
  type RegisteredCredential,
} from '../webauthn/ceremonies.js';
import {
  assertUsable,
  authenticatorsOf,
  known,
  lockAnsweringAuthenticator,
  recordUse,
  relyingParty,
} from './authenticator-store.js';
import { attributed, recordCeremonyFailure } from './ceremony-failures.js';
import { lockUsableInvite } from './invites.js';
import { SessionsService, type ClientInfo } from './sessions.service.js';
import { newSecretToken } from './tokens.js';

/** How long a browser has to answer an enrollment, sign-in or registration ceremony. */
const CEREMONY_TTL_SECONDS = 300;
const MAX_AUTHENTICATOR_NAME = 64;

/** A new session for the browser: the cookie token is shown once. */
export interface SignedIn {
  actor: Actor;
  sessionToken: string;
  sessionExpiresAt: Date;
}

interface UserRow {
  id: string;
  username: string;
  displayName: string;
  roles: Actor['roles'];
  status: string;
  webauthnUserId: Buffer;
}

/** Passkey ceremonies: enrollment by invite, discoverable sign-in, and adding a passkey after a step-up. */
@Injectable()
export class PasskeysService {
  constructor(
    private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly sessions: SessionsService,
  ) {}

  /** Creation options for the invited user; the invite stays unused until verify succeeds. */
  async enrollmentOptions(inviteToken: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
    return this.dataSource.transaction(async (manager) => {
      const invite = await lockUsableInvite(manager, inviteToken);
      const user = await loadUser(manager, invite.userId);
      return this.creationOptions(
        manager,
        user,
        await this.newCeremony(manager, 'enroll', user.id, invite.id),
      );
    });
  }

  /** Registers the passkey, spends the invite and signs the new user in, all in one transaction. */
  async enroll(
    inviteToken: string,
    response: RegistrationResponseJSON,
    client: ClientInfo,
  ): Promise<SignedIn> {
    let userId: string | null = null;
    return this.failuresAudited(
      'enroll',
      () => userId,
      response.response?.clientDataJSON,
      async (manager) => {
        const invite = await lockUsableInvite(manager, inviteToken);
        userId = invite.userId;
        const user = await loadUser(manager, invite.userId);
        if (user.status !== 'active') throw new DomainError(ErrorCode.FORBIDDEN, 'This account is suspended');
        const ceremony = await this.lockCeremony(manager, 'enroll', response.response?.clientDataJSON);
        if (ceremony.inviteId !== invite.id) {
          throw new DomainError(
            ErrorCode.CHALLENGE_MISMATCH,
            'The response answers a ceremony of another invite',
          );
        }
        const credential = await verifyRegistration(response, {
          rp: relyingParty(this.config),
          challenge: ceremony.challenge,
        });
        const authenticatorId = await this.storeAuthenticator(
          manager,
          user,
          credential,
          'invite',
          'Passkey',
          {
            inviteId: invite.id,
          },
        );
        await manager.query(`UPDATE enrollment_invites SET used_at = now() WHERE id = $1`, [invite.id]);
        await appendAuditEvent(manager, {
          actorId: user.id,
          action: AuditAction.InviteUsed,
          subjectType: 'user',
          subjectId: user.id,
          data: {
            inviteId: invite.id,
            authenticatorId,
            // Someone now holds a new passkey for an existing account: loud, and visible to its owner.
            ...(invite.recovery
              ? { recovery: true, alert: true, createdBy: invite.createdBy, approvedBy: invite.approvedBy }
              : {}),
          },
        });
        // Whoever held the account before must sign in again (with a passkey, and see the notice).
        if (invite.recovery) await this.sessions.endAllForUser(manager, user.id, user.id, 'recovery');
        const session = await this.sessions.start(manager, user.id, authenticatorId, client);
        return { actor: actorOf(user), sessionToken: session.token, sessionExpiresAt: session.expiresAt };
      },
    );
  }

  /** Request options for a discoverable-credential sign-in: no user is named before the passkey answers. */
  async loginOptions(): Promise<PublicKeyCredentialRequestOptionsJSON> {
    return this.dataSource.transaction(async (manager) => {
      const challenge = await this.newCeremony(manager, 'login', null, null);
      return authenticationOptions({ rp: relyingParty(this.config), challenge, allow: [] });
    });
  }

  /** Verifies a sign-in assertion and starts a session. */
  async login(response: AuthenticationResponseJSON, client: ClientInfo): Promise<SignedIn> {
    let userId: string | null = null;
    return this.failuresAudited(
      'login',
      () => userId,
      response.response?.clientDataJSON,
      async (manager) => {
        const ceremony = await this.lockCeremony(manager, 'login', response.response?.clientDataJSON);
        const authenticator = await lockAnsweringAuthenticator(manager, response.id);
        userId = authenticator.userId;
        try {
          const user = await loadUser(manager, authenticator.userId);
          const handle = response.response.userHandle;
          if (handle && handle !== user.webauthnUserId.toString('base64url')) {
            throw new DomainError(ErrorCode.CREDENTIAL_NOT_YOURS, 'The passkey answered for another account');
          }
          const assertion = await verifyAssertion(response, {
            rp: relyingParty(this.config),
            challenge: ceremony.challenge,
            publicKey: authenticator.publicKey,
            storedSignCount: authenticator.signCount,
          });
          // Account and passkey state only once the signature holds: an unsigned probe learns nothing.
          assertUsable(authenticator);
          if (user.status !== 'active') {
            throw new DomainError(ErrorCode.FORBIDDEN, 'This account is suspended');
          }
          await recordUse(manager, authenticator, assertion, {
            table: 'webauthn_ceremonies',
            id: ceremony.id,
          });
          const session = await this.sessions.start(manager, user.id, authenticator.id, client);
          return { actor: actorOf(user), sessionToken: session.token, sessionExpiresAt: session.expiresAt };
        } catch (error) {
          throw attributed(error, authenticator.id, authenticator.credentialId);
        }
      },
    );
  }

  /** Creation options for another passkey of the actor; the caller has verified an `authenticator.add` step-up. */
  async registrationOptions(actor: Actor): Promise<PublicKeyCredentialCreationOptionsJSON> {
    return this.dataSource.transaction(async (manager) => {
      const user = await loadUser(manager, actor.id);
      return this.creationOptions(manager, user, await this.newCeremony(manager, 'register', user.id, null));
    });
  }

  /** Registers another passkey for the actor, against the options of registrationOptions(). */
  async register(
    actor: Actor,
    response: RegistrationResponseJSON,
    name: string | null,
  ): Promise<AuthenticatorEntity> {
    return this.failuresAudited(
      'register',
      () => actor.id,
      response.response?.clientDataJSON,
      async (manager) => {
        const ceremony = await this.lockCeremony(manager, 'register', response.response?.clientDataJSON);
        if (ceremony.userId !== actor.id) {
          throw new DomainError(ErrorCode.CHALLENGE_MISMATCH, 'The response answers another user’s ceremony');
        }
        const user = await loadUser(manager, actor.id);
        const credential = await verifyRegistration(response, {
          rp: relyingParty(this.config),
          challenge: ceremony.challenge,
        });
        const id = await this.storeAuthenticator(manager, user, credential, 'step-up', name ?? 'Passkey', {});
        const [stored] = (await authenticatorsOf(manager, actor.id)).filter((item) => item.id === id);
        return stored;
      },
    );
  }

  /** Creation options for `user`, excluding the passkeys they already hold. */
  private async creationOptions(
    manager: EntityManager,
    user: UserRow,
    challenge: string,
  ): Promise<PublicKeyCredentialCreationOptionsJSON> {
    return registrationOptions({
      rp: relyingParty(this.config),
      challenge,
      userHandle: user.webauthnUserId,
      username: user.username,
      displayName: user.displayName,
      exclude: known(await authenticatorsOf(manager, user.id)),
    });
  }

  private async storeAuthenticator(
    manager: EntityManager,
    user: UserRow,
    credential: RegisteredCredential,
    enrolledVia: EnrolledVia,
    name: string,
    extra: { inviteId?: string },
  ): Promise<string> {
    const id = uuidv7();
    const [existing] = (await manager.query(`SELECT 1 FROM authenticators WHERE credential_id = $1`, [
      credential.credentialId,
    ])) as unknown[];
    if (existing) {
      throw new DomainError(ErrorCode.ATTESTATION_INVALID, 'This passkey is already registered');
    }
    await manager.query(
      `INSERT INTO authenticators (id, user_id, credential_id, public_key, sign_count, aaguid, backup_eligible,
         backed_up, transports, name, enrolled_via, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now())`,
      [
        id,
        user.id,
        credential.credentialId,
        credential.publicKey,
        credential.signCount,
        credential.aaguid.toLowerCase(),
        credential.backupEligible,
        credential.backedUp,
        credential.transports,
        name.slice(0, MAX_AUTHENTICATOR_NAME),
        enrolledVia,
      ],
    );
    await appendAuditEvent(manager, {
      actorId: user.id,
      action: AuditAction.AuthenticatorRegistered,
      subjectType: 'authenticator',
      subjectId: id,
      data: {
        userId: user.id,
        username: user.username,
        credentialId: credential.credentialId,
        publicKey: credential.publicKey.toString('base64url'),
        aaguid: credential.aaguid.toLowerCase(),
        backupEligible: credential.backupEligible,
        backedUp: credential.backedUp,
        enrolledVia,
        ...extra,
      },
    });
    return id;
  }

  private async newCeremony(
    manager: EntityManager,
    purpose: CeremonyPurpose,
    userId: string | null,
    inviteId: string | null,
  ): Promise<string> {
    const challenge = newSecretToken();
    await manager.query(
      `INSERT INTO webauthn_ceremonies (id, purpose, challenge, user_id, invite_id, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, now(), now() + make_interval(secs => $6))`,
      [uuidv7(), purpose, challenge, userId, inviteId, CEREMONY_TTL_SECONDS],
    );
    return challenge;
  }

  /** The open ceremony a response answers, found by the challenge echoed in its clientDataJSON, and spent. */
  private async lockCeremony(
    manager: EntityManager,
    purpose: CeremonyPurpose,
    clientDataJson: unknown,
  ): Promise<WebauthnCeremonyEntity> {
    const challenge = echoedChallenge(clientDataJson);
    if (!challenge)
      throw new DomainError(ErrorCode.WEBAUTHN_MALFORMED, 'clientDataJSON carries no challenge');
    const [ceremony] = (await manager.query(
      `SELECT id, purpose, challenge, user_id AS "userId", invite_id AS "inviteId", used_at AS "usedAt",
              expires_at <= now() AS expired
         FROM webauthn_ceremonies WHERE challenge = $1 AND purpose = $2 FOR UPDATE`,
      [challenge, purpose],
    )) as Array<WebauthnCeremonyEntity & { expired: boolean }>;
    if (!ceremony)
      throw new DomainError(ErrorCode.CHALLENGE_MISMATCH, 'The response answers no open ceremony');
    if (ceremony.usedAt)
      throw new DomainError(ErrorCode.CHALLENGE_MISMATCH, 'This ceremony was already completed');
    if (ceremony.expired)
      throw new DomainError(ErrorCode.CEREMONY_EXPIRED, 'This ceremony has expired; start again');
    await manager.query(`UPDATE webauthn_ceremonies SET used_at = now() WHERE id = $1`, [ceremony.id]);
    return ceremony;
  }

  /** Runs a ceremony; a refusal rolls it back, then is audited (and spends the challenge) in its own transaction. */
  private async failuresAudited<T>(
    kind: 'enroll' | 'login' | 'register',
    actorId: () => string | null,
    clientDataJson: unknown,
    work: (manager: EntityManager) => Promise<T>,
  ): Promise<T> {
    try {
      return await this.dataSource.transaction(work);
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      await this.dataSource.transaction(async (manager) => {
        await manager.query(
          `UPDATE webauthn_ceremonies SET used_at = now() WHERE challenge = $1 AND purpose = $2 AND used_at IS NULL`,
          [echoedChallenge(clientDataJson) ?? '', kind],
        );
        await recordCeremonyFailure(manager, {
          kind,
          actorId: actorId(),
          error,
          subjectType: 'ceremony',
          subjectId: kind,
        });
      });
      throw error;
    }
  }
}

async function loadUser(manager: EntityManager, userId: string): Promise<UserRow> {
  const [user] = (await manager.query(
    `SELECT id, username, display_name AS "displayName", roles, status, webauthn_user_id AS "webauthnUserId"
       FROM users WHERE id = $1`,
    [userId],
  )) as UserRow[];
  if (!user) throw new DomainError(ErrorCode.USER_NOT_FOUND, 'No such user');
  return user;
}

function actorOf(user: UserRow): Actor {
  return { id: user.id, username: user.username, displayName: user.displayName, roles: user.roles };
}
