import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 13: a compensating revoke can overtake its late mint, and a receiver answers it 404. Once the undo
 * went through, it is sent once more after the mint timeout (`resend_at`, same Idempotency-Key), then
 * forgotten.
 */
export class MintUndoResend1764960000000 implements MigrationInterface {
  name = 'MintUndoResend1764960000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE mint_attempts ADD COLUMN resend_at timestamptz NULL`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE mint_attempts DROP COLUMN resend_at`);
  }
}
