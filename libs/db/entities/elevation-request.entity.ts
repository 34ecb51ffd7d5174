import { Column, Entity, PrimaryColumn } from 'typeorm';

/** The identity a workload's OIDC token proved when it filed a request, and the policy's words for it then. */
export interface RequesterWorkload {
  id: string;
  title: string;
  /** The group accountable for the workload when it filed. */
  ownerGroup: string;
  issuer: string;
  subject: string;
  /** The token's `jti`, null when the issuer sets none. */
  jti: string | null;
}

/** A request for an entitlement. Only RequestsService writes `state` (one writer per aggregate). */
@Entity({ name: 'elevation_requests' })
export class ElevationRequestEntity {
  @PrimaryColumn('uuid')
  id: string;

  @Column('uuid', { name: 'requester_id' })
  requesterId: string;

  @Column('text', { name: 'entitlement_id' })
  entitlementId: string;

  @Column('text', { name: 'policy_hash' })
  policyHash: string;

  @Column('jsonb')
  scope: Record<string, unknown>;

  @Column('integer', { name: 'duration_seconds' })
  durationSeconds: number;

  @Column('text')
  justification: string;

  @Column('text', { nullable: true })
  ticket: string | null;

  @Column('timestamptz', { name: 'not_before', nullable: true })
  notBefore: Date | null;

  @Column('boolean', { name: 'break_glass', default: false })
  breakGlass: boolean;

  @Column('uuid', { name: 'extends_request_id', nullable: true })
  extendsRequestId: string | null;

  /** The OpenSSH public key an ssh entitlement signs; part of what every step-up on the request commits to. */
  @Column('text', { name: 'ssh_public_key', nullable: true })
  sshPublicKey: string | null;

  /** Set when a workload filed it (issue 21): who its OIDC token proved it was, at filing. */
  @Column('jsonb', { name: 'requester_workload', nullable: true })
  requesterWorkload: RequesterWorkload | null;

  @Column('integer', { name: 'approvals_required' })
  approvalsRequired: number;

  @Column('text')
  state: string;

  @Column('timestamptz', { name: 'created_at' })
  createdAt: Date;

  /** When a still-PENDING request expires (pending TTL). */
  @Column('timestamptz', { name: 'pending_until', nullable: true })
  pendingUntil: Date | null;

  @Column('timestamptz', { name: 'decided_at', nullable: true })
  decidedAt: Date | null;

  /** Deadline to activate once approved (activation window). */
  @Column('timestamptz', { name: 'activate_by', nullable: true })
  activateBy: Date | null;

  /** When the activation window of a scheduled request opened (the start job at notBefore), once. */
  @Column('timestamptz', { name: 'window_opened_at', nullable: true })
  windowOpenedAt: Date | null;

  @Column('timestamptz', { name: 'activated_at', nullable: true })
  activatedAt: Date | null;

  @Column('timestamptz', { name: 'ends_at', nullable: true })
  endsAt: Date | null;

  @Column('timestamptz', { name: 'ended_at', nullable: true })
  endedAt: Date | null;

  @Column('text', { name: 'end_reason', nullable: true })
  endReason: string | null;

  /** Break-glass only: when the post-review is due, and who reviewed it. */
  @Column('timestamptz', { name: 'review_due_at', nullable: true })
  reviewDueAt: Date | null;

  @Column('timestamptz', { name: 'reviewed_at', nullable: true })
  reviewedAt: Date | null;

  @Column('uuid', { name: 'reviewed_by', nullable: true })
  reviewedBy: string | null;

  @Column('text', { name: 'review_comment', nullable: true })
  reviewComment: string | null;

  /** Set once the overdue review has been reported (audited), so it is reported once. */
  @Column('timestamptz', { name: 'review_overdue_at', nullable: true })
  reviewOverdueAt: Date | null;
}
