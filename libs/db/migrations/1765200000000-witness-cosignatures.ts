import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 22: witnesses. The cosignature/v1 line each configured witness returned for a checkpoint, one per
 * checkpoint size and witness key name; append-only like the checkpoints they cosign.
 */
export class WitnessCosignatures1765200000000 implements MigrationInterface {
  name = 'WitnessCosignatures1765200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE audit_tlog_cosignatures (
        size bigint NOT NULL REFERENCES audit_tlog_checkpoints (size),
        witness text NOT NULL CHECK (witness <> '' AND witness !~ '[[:space:]+]'),
        line text NOT NULL CHECK (line LIKE '— % %' AND line !~ '[\\n\\r]'),
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (size, witness)
      )`);
    await queryRunner.query(
      `CREATE INDEX audit_tlog_cosignatures_witness ON audit_tlog_cosignatures (witness, size)`,
    );
    await queryRunner.query(`
      CREATE TRIGGER audit_tlog_cosignatures_no_update_delete BEFORE UPDATE OR DELETE ON audit_tlog_cosignatures
        FOR EACH ROW EXECUTE FUNCTION audit_merkle_append_only()`);
    await queryRunner.query(`
      CREATE TRIGGER audit_tlog_cosignatures_no_truncate BEFORE TRUNCATE ON audit_tlog_cosignatures
        FOR EACH STATEMENT EXECUTE FUNCTION audit_merkle_append_only()`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE audit_tlog_cosignatures`);
  }
}
