import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 22 point 1: audit events accepted with their state change but not yet chained. A transaction inserts
 * its events here at commit (no shared row locked); the chain sequencer (libs/audit/audit-sequencer.ts) moves
 * them into audit_events in batches. `batch` is drawn once per transaction and `ord` is the event's place in
 * it, so a transaction's events stay adjacent in the chain. The columns and their types are audit_events'
 * event fields: a row accepted here can always be inserted there.
 */
export class AuditPending1765260000000 implements MigrationInterface {
  name = 'AuditPending1765260000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE audit_pending (
        batch bigint NOT NULL,
        ord integer NOT NULL,
        actor_id text NOT NULL,
        action text NOT NULL,
        subject_type text NOT NULL,
        subject_id text NOT NULL,
        request_id uuid,
        data jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (batch, ord)
      )`);
    await queryRunner.query(`CREATE SEQUENCE audit_pending_batch_seq OWNED BY audit_pending.batch`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE audit_pending`);
  }
}
