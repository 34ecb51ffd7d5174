import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The elevation lifecycle (DESIGN §3, §6): which policy version is in force across broker instances,
 * early revocation, break-glass post-review, approver views (rubber-stamp signal) and entitlement lockouts.
 */
export class Lifecycle1764200000000 implements MigrationInterface {
  name = 'Lifecycle1764200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    // The latest activation is the version in force for every broker, whichever instance loaded it.
    await queryRunner.query(`
      CREATE TABLE policy_activations (
        id bigserial PRIMARY KEY,
        hash text NOT NULL REFERENCES policy_versions (hash),
        activated_at timestamptz NOT NULL DEFAULT now(),
        activated_by text NOT NULL
      )`);
    await queryRunner.query(`
      ALTER TABLE grants
        ADD COLUMN revoke_requested_at timestamptz,
        ADD COLUMN revoke_reason text`);
    await queryRunner.query(`
      ALTER TABLE elevation_requests
        ADD COLUMN review_due_at timestamptz,
        ADD COLUMN reviewed_at timestamptz,
        ADD COLUMN reviewed_by uuid REFERENCES users (id),
        ADD COLUMN review_comment text,
        ADD COLUMN review_overdue_at timestamptz,
        ADD COLUMN ssh_public_key text`);
    await queryRunner.query(
      `CREATE INDEX elevation_requests_review_idx ON elevation_requests (review_due_at) WHERE break_glass AND reviewed_at IS NULL`,
    );
    await queryRunner.query(
      `CREATE INDEX elevation_requests_entitlement_idx ON elevation_requests (requester_id, entitlement_id, created_at DESC)`,
    );
    await queryRunner.query(`
      CREATE TABLE request_views (
        request_id uuid NOT NULL REFERENCES elevation_requests (id),
        user_id uuid NOT NULL REFERENCES users (id),
        first_viewed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (request_id, user_id)
      )`);
    await queryRunner.query(`
      CREATE TABLE entitlement_lockouts (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id),
        entitlement_id text NOT NULL,
        locked_at timestamptz NOT NULL,
        reason text NOT NULL,
        unlocked_at timestamptz,
        unlocked_by uuid REFERENCES users (id)
      )`);
    await queryRunner.query(
      `CREATE UNIQUE INDEX entitlement_lockouts_open_idx ON entitlement_lockouts (user_id, entitlement_id) WHERE unlocked_at IS NULL`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE entitlement_lockouts`);
    await queryRunner.query(`DROP TABLE request_views`);
    await queryRunner.query(`DROP INDEX elevation_requests_entitlement_idx`);
    await queryRunner.query(`DROP INDEX elevation_requests_review_idx`);
    await queryRunner.query(`
      ALTER TABLE elevation_requests
        DROP COLUMN ssh_public_key, DROP COLUMN review_overdue_at, DROP COLUMN review_comment, DROP COLUMN reviewed_by,
        DROP COLUMN reviewed_at, DROP COLUMN review_due_at`);
    await queryRunner.query(`ALTER TABLE grants DROP COLUMN revoke_reason, DROP COLUMN revoke_requested_at`);
    await queryRunner.query(`DROP TABLE policy_activations`);
  }
}
