import { Column, Entity, PrimaryColumn } from 'typeorm';

export type ApprovalDecision = 'approve' | 'deny';

/** One approver's decision on one request, with the WebAuthn step-up evidence that authorised it. */
@Entity({ name: 'approvals' })
export class ApprovalEntity {
  @PrimaryColumn('uuid')
  id: string;

  @Column('uuid', { name: 'request_id' })
  requestId: string;

  @Column('uuid', { name: 'approver_id' })
  approverId: string;

  @Column('text')
  decision: ApprovalDecision;

  @Column('text', { nullable: true })
  comment: string | null;

  @Column('text', { name: 'credential_id', nullable: true })
  credentialId: string | null;

  @Column('bytea', { name: 'authenticator_data', nullable: true })
  authenticatorData: Buffer | null;

  @Column('bytea', { name: 'client_data_json', nullable: true })
  clientDataJson: Buffer | null;

  @Column('bytea', { nullable: true })
  signature: Buffer | null;

  @Column('text', { nullable: true })
  nonce: string | null;

  @Column('text', { name: 'subject_digest', nullable: true })
  subjectDigest: string | null;

  @Column('timestamptz')
  at: Date;
}
