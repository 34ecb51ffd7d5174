import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A broker signing key; the private half is AES-256-GCM encrypted with BROKER_MASTER_KEY. */
@Entity({ name: 'signing_keys' })
export class SigningKeyEntity {
  @PrimaryColumn('text')
  kid: string;

  /** What the key signs: `jwt` (ES256 access tokens) or `audit` (Ed25519 checkpoints and manifests). */
  @Column('text')
  purpose: string;

  @Column('text')
  alg: string;

  @Column('jsonb', { name: 'public_jwk' })
  publicJwk: Record<string, unknown>;

  @Column('bytea', { name: 'private_key_encrypted' })
  privateKeyEncrypted: Buffer;

  @Column('timestamptz', { name: 'created_at' })
  createdAt: Date;

  /** No longer used to sign; still published until the last token it signed has expired. */
  @Column('timestamptz', { name: 'retired_at', nullable: true })
  retiredAt: Date | null;
}
