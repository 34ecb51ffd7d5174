import { Column, Entity, PrimaryColumn } from 'typeorm';

export type EnrolledVia = 'invite' | 'step-up';

/** A user's passkey: the COSE public key and the state that detects a cloned authenticator. */
@Entity({ name: 'authenticators' })
export class AuthenticatorEntity {
  @PrimaryColumn('uuid')
  id: string;

  @Column('uuid', { name: 'user_id' })
  userId: string;

  /** base64url, as the browser reports it. */
  @Column('text', { name: 'credential_id' })
  credentialId: string;

  /** COSE_Key bytes. */
  @Column('bytea', { name: 'public_key' })
  publicKey: Buffer;

  // bigint columns come back from pg as strings; the counter fits a JS number (32-bit in WebAuthn).
  @Column('bigint', { name: 'sign_count', transformer: { to: (value: number) => value, from: Number } })
  signCount: number;

  @Column('text')
  aaguid: string;

  @Column('boolean', { name: 'backup_eligible' })
  backupEligible: boolean;

  @Column('boolean', { name: 'backed_up' })
  backedUp: boolean;

  @Column('text', { array: true })
  transports: string[];

  @Column('text')
  name: string;

  @Column('text', { name: 'enrolled_via' })
  enrolledVia: EnrolledVia;

  @Column('timestamptz', { name: 'created_at' })
  createdAt: Date;

  @Column('timestamptz', { name: 'last_used_at', nullable: true })
  lastUsedAt: Date | null;

  @Column('timestamptz', { name: 'disabled_at', nullable: true })
  disabledAt: Date | null;

  @Column('text', { name: 'disabled_reason', nullable: true })
  disabledReason: string | null;

  @Column('timestamptz', { name: 'removed_at', nullable: true })
  removedAt: Date | null;
}
