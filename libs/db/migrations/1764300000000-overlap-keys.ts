import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Overlap keys (DESIGN §7): grants whose connector shares external state between them (a webhook that
 * adds a user to a group) carry the same key, and revocation leaves that state alone while another
 * active grant still holds it.
 */
export class OverlapKeys1764300000000 implements MigrationInterface {
  name = 'OverlapKeys1764300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE grants ADD COLUMN overlap_key text`);
    // Revocation asks "does another active grant hold this key?": only active grants with a key matter.
    await queryRunner.query(
      `CREATE INDEX grants_overlap_key_idx ON grants (overlap_key) WHERE overlap_key IS NOT NULL AND state = 'ACTIVE'`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX grants_overlap_key_idx`);
    await queryRunner.query(`ALTER TABLE grants DROP COLUMN overlap_key`);
  }
}
