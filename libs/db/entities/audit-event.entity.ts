import { Column, Entity, PrimaryColumn } from 'typeorm';

/** One link of the append-only, hash-chained audit log (a trigger rejects UPDATE, DELETE, TRUNCATE). */
@Entity({ name: 'audit_events' })
export class AuditEventEntity {
  /** bigint: the pg driver returns it as a string. */
  @PrimaryColumn('bigint')
  seq: string;

  @Column('timestamptz')
  at: Date;

  @Column('text', { name: 'actor_id' })
  actorId: string;

  @Column('text')
  action: string;

  @Column('text', { name: 'subject_type' })
  subjectType: string;

  @Column('text', { name: 'subject_id' })
  subjectId: string;

  @Column('uuid', { name: 'request_id', nullable: true })
  requestId: string | null;

  @Column('jsonb')
  data: Record<string, unknown>;

  @Column('bytea', { name: 'prev_hash' })
  prevHash: Buffer;

  @Column('bytea')
  hash: Buffer;
}

/** The chain's last seq and hash: moved only by a holder of the chain lock (libs/audit/audit-sequencer.ts). */
@Entity({ name: 'audit_chain_head' })
export class AuditChainHeadEntity {
  @PrimaryColumn('smallint')
  id: number;

  @Column('bigint')
  seq: string;

  @Column('bytea')
  hash: Buffer;
}
