import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Truthful revoke (issue 13): a grant is REVOKING from the moment its revocation is due until the connector
 * confirms it, and `next_retry_at` says when the worker tries again after a failed attempt.
 */
export class GrantRevoking1764600000000 implements MigrationInterface {
  name = 'GrantRevoking1764600000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE grants DROP CONSTRAINT grants_state_check`);
    await queryRunner.query(`
      ALTER TABLE grants ADD CONSTRAINT grants_state_check
        CHECK (state IN ('ACTIVE', 'REVOKING', 'REVOKED', 'REVOKE_FAILED'))`);
    await queryRunner.query(`ALTER TABLE grants ADD COLUMN next_retry_at timestamptz NULL`);
    // Grants whose revocation was due and not yet confirmed were ACTIVE until now.
    await queryRunner.query(`
      UPDATE grants SET state = 'REVOKING'
       WHERE state = 'ACTIVE' AND (revoke_requested_at IS NOT NULL OR revoke_attempts > 0)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`UPDATE grants SET state = 'ACTIVE' WHERE state = 'REVOKING'`);
    await queryRunner.query(`ALTER TABLE grants DROP COLUMN next_retry_at`);
    await queryRunner.query(`ALTER TABLE grants DROP CONSTRAINT grants_state_check`);
    await queryRunner.query(`
      ALTER TABLE grants ADD CONSTRAINT grants_state_check
        CHECK (state IN ('ACTIVE', 'REVOKED', 'REVOKE_FAILED'))`);
  }
}
