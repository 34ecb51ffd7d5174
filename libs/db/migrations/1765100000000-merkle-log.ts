import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 22: the audit log as an RFC 9162 Merkle tree beside the hash chain. The sequencer stores the hash of
 * every complete aligned subtree (level 0: one leaf per event, leaf i = seq i+1) and how many events it has
 * integrated; signed C2SP checkpoints of the tree are kept by size. Nodes and checkpoints are append-only.
 */
export class MerkleLog1765100000000 implements MigrationInterface {
  name = 'MerkleLog1765100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE audit_merkle_nodes (
        level smallint NOT NULL CHECK (level >= 0 AND level < 63),
        idx bigint NOT NULL CHECK (idx >= 0),
        hash bytea NOT NULL CHECK (octet_length(hash) = 32),
        PRIMARY KEY (level, idx)
      )`);
    await queryRunner.query(`
      CREATE TABLE audit_merkle_size (
        id smallint PRIMARY KEY CHECK (id = 1),
        size bigint NOT NULL CHECK (size >= 0)
      )`);
    await queryRunner.query(`INSERT INTO audit_merkle_size (id, size) VALUES (1, 0)`);
    await queryRunner.query(`
      CREATE TABLE audit_tlog_checkpoints (
        size bigint PRIMARY KEY CHECK (size > 0),
        root bytea NOT NULL CHECK (octet_length(root) = 32),
        note text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`
      CREATE FUNCTION audit_merkle_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP;
      END $$`);
    for (const table of ['audit_merkle_nodes', 'audit_tlog_checkpoints']) {
      await queryRunner.query(`
        CREATE TRIGGER ${table}_no_update_delete BEFORE UPDATE OR DELETE ON ${table}
          FOR EACH ROW EXECUTE FUNCTION audit_merkle_append_only()`);
      await queryRunner.query(`
        CREATE TRIGGER ${table}_no_truncate BEFORE TRUNCATE ON ${table}
          FOR EACH STATEMENT EXECUTE FUNCTION audit_merkle_append_only()`);
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE audit_tlog_checkpoints`);
    await queryRunner.query(`DROP TABLE audit_merkle_size`);
    await queryRunner.query(`DROP TABLE audit_merkle_nodes`);
    await queryRunner.query(`DROP FUNCTION audit_merkle_append_only()`);
  }
}
