/** What a connector needs to mint one grant's credential. */
export interface GrantSpec {
  grantId: string;
  requestId: string;
  /** The requester's username: the credential's subject. */
  subject: string;
  entitlementId: string;
  /** The entitlement's scope from the policy (e.g. `{ grantRoles: [...] }`, `{ scopes: [...] }`). */
  scope: Record<string, unknown>;
  /** The end of the window, whole seconds: the credential expires on its own at this instant. */
  notAfter: Date;
  sshPublicKey?: string | null;
  /** When the requester's step-up that authorised this activation was verified (a JWT's `auth_time`). */
  authenticatedAt?: Date;
}

/** The credential as shown to the requester once (`type` + connector-specific fields); never stored. */
export interface Credential {
  type: string;
  notAfter: string;
  [field: string]: unknown;
}

export interface Minted {
  credential: Credential;
  /** What revoke() needs to find the external state again (a role name, a serial, a token id). */
  externalRef: string;
  /** sha256 of the secret, base64url: identifies the credential in the audit log without revealing it. */
  fingerprint: string;
  notAfter: Date;
}

/** Which grant a revoke is for (the webhook connector derives its Idempotency-Key from it). */
export interface RevokeContext {
  grantId: string;
}

/** A credential backend (DESIGN §7). */
export interface Connector {
  readonly type: string;
  mint(grant: GrantSpec): Promise<Minted>;
  /** Idempotent: revoking twice, or revoking a reference that no longer exists, is success. */
  revoke(externalRef: string, grant?: RevokeContext): Promise<void>;
  /**
   * True when revoke() changes nothing outside this database (the grant's REVOKED state alone takes the
   * credential back): the revocation then runs as one transaction, with no REVOKING step for a crash to
   * interrupt between the connector and the commit.
   */
  readonly revokesInDatabaseOnly?: boolean;
  /**
   * Takes back whatever a mint that failed or timed out may still have applied at the other end (its answer
   * never came, so only the grant is known). Only connectors whose mint can half-succeed remotely have it.
   */
  compensateMint?(grant: GrantSpec): Promise<void>;
  /** Shared external state: revoke only when no other active grant holds the same key. */
  overlapKey?(grant: GrantSpec): string;
}
