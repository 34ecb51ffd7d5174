import { Column, Entity, PrimaryColumn } from 'typeorm';

export type CeremonyPurpose = 'enroll' | 'login' | 'register';

/** The challenge of an enrollment, sign-in or authenticator registration; single use, short-lived. */
@Entity({ name: 'webauthn_ceremonies' })
export class WebauthnCeremonyEntity {
  @PrimaryColumn('uuid')
  id: string;

  @Column('text')
  purpose: CeremonyPurpose;

  /** base64url, exactly as sent in the options and echoed in clientDataJSON. */
  @Column('text')
  challenge: string;

  @Column('uuid', { name: 'user_id', nullable: true })
  userId: string | null;

  @Column('uuid', { name: 'invite_id', nullable: true })
  inviteId: string | null;

  @Column('timestamptz', { name: 'created_at' })
  createdAt: Date;

  @Column('timestamptz', { name: 'expires_at' })
  expiresAt: Date;

  @Column('timestamptz', { name: 'used_at', nullable: true })
  usedAt: Date | null;
}

/** A step-up challenge bound to one user, action and subject (DESIGN §5); single use, 2 minutes. */
@Entity({ name: 'step_up_challenges' })
export class StepUpChallengeEntity {
  @PrimaryColumn('uuid')
  id: string;

  @Column('uuid', { name: 'user_id' })
  userId: string;

  @Column('text')
  action: string;

  @Column('text', { name: 'subject_id' })
  subjectId: string;

  @Column('text', { name: 'subject_digest' })
  subjectDigest: string;

  @Column('text')
  nonce: string;

  @Column('text')
  challenge: string;

  @Column('timestamptz', { name: 'created_at' })
  createdAt: Date;

  @Column('timestamptz', { name: 'expires_at' })
  expiresAt: Date;

  @Column('timestamptz', { name: 'used_at', nullable: true })
  usedAt: Date | null;
}
