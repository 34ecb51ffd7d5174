import { Column, Entity, PrimaryColumn } from 'typeorm';

@Entity({ name: 'policy_versions' })
export class PolicyVersionEntity {
  /** sha256 (hex) of the canonical policy document. */
  @PrimaryColumn('text')
  hash: string;

  @Column('jsonb')
  content: unknown;

  @Column('timestamptz', { name: 'loaded_at' })
  loadedAt: Date;

  @Column('text', { name: 'loaded_by' })
  loadedBy: string;
}
