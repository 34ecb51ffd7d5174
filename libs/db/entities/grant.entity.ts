import { Column, Entity, PrimaryColumn } from 'typeorm';

export type GrantState = 'ACTIVE' | 'REVOKING' | 'REVOKED' | 'REVOKE_FAILED';

/** An issued credential. The secret itself is never stored: only a fingerprint of it. */
@Entity({ name: 'grants' })
export class GrantEntity {
  @PrimaryColumn('uuid')
  id: string;

  @Column('uuid', { name: 'request_id' })
  requestId: string;

  /** Connector instance name from the policy (e.g. `api-token`). */
  @Column('text')
  connector: string;

  @Column('text', { name: 'connector_type' })
  connectorType: string;

  @Column('text', { name: 'external_ref' })
  externalRef: string;

  @Column('text')
  fingerprint: string;

  @Column('timestamptz', { name: 'issued_at' })
  issuedAt: Date;

  @Column('timestamptz', { name: 'not_after' })
  notAfter: Date;

  @Column('text')
  state: GrantState;

  @Column('timestamptz', { name: 'revoked_at', nullable: true })
  revokedAt: Date | null;

  @Column('integer', { name: 'revoke_attempts', default: 0 })
  revokeAttempts: number;

  @Column('text', { name: 'last_error', nullable: true })
  lastError: string | null;

  /** When the worker tries the revocation again after a failed attempt; null when no retry is scheduled. */
  @Column('timestamptz', { name: 'next_retry_at', nullable: true })
  nextRetryAt: Date | null;

  /** Set by an early revoke (requester, approver, admin, suspension): the grant is due now, not at notAfter. */
  @Column('timestamptz', { name: 'revoke_requested_at', nullable: true })
  revokeRequestedAt: Date | null;

  @Column('text', { name: 'revoke_reason', nullable: true })
  revokeReason: string | null;

  /** The external state this grant shares with others (Connector.overlapKey); null when it shares none. */
  @Column('text', { name: 'overlap_key', nullable: true })
  overlapKey: string | null;
}
