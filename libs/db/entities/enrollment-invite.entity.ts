import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A one-time enrollment link; only the sha256 of its token is stored. */
@Entity({ name: 'enrollment_invites' })
export class EnrollmentInviteEntity {
  @PrimaryColumn('uuid')
  id: string;

  @Column('bytea', { name: 'token_hash' })
  tokenHash: Buffer;

  @Column('uuid', { name: 'user_id' })
  userId: string;

  /** A user id, or `cli` / `bootstrap`. */
  @Column('text', { name: 'created_by' })
  createdBy: string;

  @Column('timestamptz', { name: 'created_at' })
  createdAt: Date;

  @Column('timestamptz', { name: 'expires_at' })
  expiresAt: Date;

  @Column('timestamptz', { name: 'used_at', nullable: true })
  usedAt: Date | null;
}
