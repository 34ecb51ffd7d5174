import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Notifications (issue 18). The audit log is the outbox: `notification_cursor` holds the last audit seq the
 * worker has turned into deliveries, advanced in the transaction that inserts them, so nothing committed is
 * skipped or sent twice. One row per message in `notification_deliveries` (never a secret: a link and
 * names only); `dedupe_key` makes "at most one message per recipient per request" a constraint.
 */
export class Notifications1764900000000 implements MigrationInterface {
  name = 'Notifications1764900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE users ADD COLUMN email text NULL`);
    await queryRunner.query(
      `ALTER TABLE users ADD COLUMN notification_preferences jsonb NOT NULL DEFAULT '{}'::jsonb`,
    );
    await queryRunner.query(`
      CREATE TABLE notification_cursor (
        id smallint PRIMARY KEY CHECK (id = 1),
        seq bigint NOT NULL
      )`);
    // Start at the chain head: a deployment that turns notifications on is not told of its whole past.
    await queryRunner.query(
      `INSERT INTO notification_cursor (id, seq) SELECT 1, seq FROM audit_chain_head WHERE id = 1`,
    );
    await queryRunner.query(`
      CREATE TABLE notification_deliveries (
        id uuid PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now(),
        kind text NOT NULL,
        channel text NOT NULL,
        recipient text NOT NULL,
        recipient_user_id uuid NULL REFERENCES users (id),
        request_id uuid NULL,
        event_seq bigint NULL,
        dedupe_key text NOT NULL,
        status text NOT NULL,
        send_after timestamptz NULL,
        digest_id uuid NULL,
        attempts integer NOT NULL DEFAULT 0,
        last_error text NULL,
        sent_at timestamptz NULL,
        body jsonb NOT NULL DEFAULT '{}'::jsonb
      )`);
    await queryRunner.query(
      `CREATE UNIQUE INDEX notification_deliveries_once ON notification_deliveries (channel, recipient, dedupe_key)`,
    );
    await queryRunner.query(
      `CREATE INDEX notification_deliveries_open ON notification_deliveries (status, send_after)
        WHERE status IN ('pending', 'held')`,
    );
    await queryRunner.query(
      `CREATE INDEX notification_deliveries_recent ON notification_deliveries (created_at DESC, id DESC)`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE notification_deliveries`);
    await queryRunner.query(`DROP TABLE notification_cursor`);
    await queryRunner.query(`ALTER TABLE users DROP COLUMN notification_preferences`);
    await queryRunner.query(`ALTER TABLE users DROP COLUMN email`);
  }
}
