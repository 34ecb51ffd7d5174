import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

export type UserRole = 'admin' | 'auditor';
export type UserStatus = 'active' | 'suspended';

@Entity({ name: 'users' })
export class UserEntity {
  @PrimaryColumn('uuid')
  id: string;

  @Column('text', { unique: true })
  username: string;

  @Column('text', { name: 'display_name' })
  displayName: string;

  @Column('text', { array: true, default: () => "'{}'" })
  roles: UserRole[];

  @Column('text', { default: 'active' })
  status: UserStatus;

  /** 'workload' for a non-human requester (issue 21), named `workload:<id>`; it never signs in. */
  @Column('text', { default: 'person' })
  kind: 'person' | 'workload';

  /** The WebAuthn user handle: random bytes, never the id or the name. */
  @Column('bytea', { name: 'webauthn_user_id' })
  webauthnUserId: Buffer;

  @Column('timestamptz', { name: 'step_up_locked_until', nullable: true })
  stepUpLockedUntil: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}
