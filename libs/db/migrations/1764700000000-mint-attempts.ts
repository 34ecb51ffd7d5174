import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Webhook idempotency and compensation (issue 13). A row per mint attempt: while `undo_external_ref` is null
 * it reserves the grant id of the request's activation attempt, committed before the mint is sent, so an
 * attempt the broker never concluded (it stopped mid-mint) is retried with the same grant id and
 * Idempotency-Key (at most one such row per request). Once set, the attempt failed and its undo (a revoke)
 * did not go through: the sweep retries it until the connector confirms. Rows go once concluded.
 */
export class MintAttempts1764700000000 implements MigrationInterface {
  name = 'MintAttempts1764700000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE mint_attempts (
        grant_id uuid PRIMARY KEY,
        request_id uuid NULL REFERENCES elevation_requests (id),
        reserved_at timestamptz NOT NULL DEFAULT now(),
        undo_external_ref text NULL,
        connector text NULL,
        policy_hash text NULL,
        overlap_key text NULL,
        undo_attempts integer NOT NULL DEFAULT 0,
        last_error text NULL
      )`);
    await queryRunner.query(`
      CREATE UNIQUE INDEX mint_attempts_reserved_per_request ON mint_attempts (request_id)
        WHERE undo_external_ref IS NULL`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE mint_attempts`);
  }
}
