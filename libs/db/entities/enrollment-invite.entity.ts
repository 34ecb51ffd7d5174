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

  /** An invite for a user who holds or held a passkey: using it ends their sessions and shows a notice. */
  @Column('boolean', { default: false })
  recovery: boolean;

  /** An invite for a privileged user (libs/domain/recovery-rules.ts): unusable until another admin approves it. */
  @Column('boolean', { name: 'needs_second_admin', default: false })
  needsSecondAdmin: boolean;

  /** An admin's first invite of a privileged user: the enrolled user is told who created (and approved) it. */
  @Column('boolean', { name: 'enrollment_notice', default: false })
  enrollmentNotice: boolean;

  /** Created by whoever holds the database credentials (`cli invite --break-glass`), past the second admin. */
  @Column('boolean', { name: 'break_glass', default: false })
  breakGlass: boolean;

  @Column('uuid', { name: 'approved_by', nullable: true })
  approvedBy: string | null;

  @Column('timestamptz', { name: 'approved_at', nullable: true })
  approvedAt: Date | null;
}
