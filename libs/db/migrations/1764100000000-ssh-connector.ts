import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The SSH connector: its CA key in signing_keys (purpose `ssh`) and the revoked serials its KRL lists. */
export class SshConnector1764100000000 implements MigrationInterface {
  name = 'SshConnector1764100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_purpose_check`);
    await queryRunner.query(`
      ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_purpose_check
        CHECK (purpose IN ('jwt', 'audit', 'ssh'))`);
    // Keyed by CA as well as serial: serials are only unique per CA, and the KRL has one section per CA.
    // not_after is the certificate's own expiry: once it has passed sshd refuses the certificate anyway, so
    // the KRL can leave the serial out and stay small although every grant is revoked when it ends.
    await queryRunner.query(`
      CREATE TABLE ssh_revoked_serials (
        ca_kid text NOT NULL REFERENCES signing_keys (kid),
        serial bigint NOT NULL CHECK (serial > 0),
        not_after timestamptz NOT NULL,
        revoked_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (ca_kid, serial)
      )`);
    await queryRunner.query(
      `CREATE INDEX ssh_revoked_serials_not_after_idx ON ssh_revoked_serials (not_after)`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE ssh_revoked_serials`);
    // The old constraint cannot hold an ssh key, so going back loses the SSH CA: certificates it signed stop
    // being verifiable by the broker and a new CA (to be re-trusted on every host) is made on the next mint.
    await queryRunner.query(`DELETE FROM signing_keys WHERE purpose = 'ssh'`);
    await queryRunner.query(`ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_purpose_check`);
    await queryRunner.query(`
      ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_purpose_check CHECK (purpose IN ('jwt', 'audit'))`);
  }
}
