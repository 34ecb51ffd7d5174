import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Recovery invites (issue 12): an invite for a user who holds or held a passkey is a recovery. Recovering
 * a privileged user (an admin, an approver, or a requester of break-glass or self-service) waits for a
 * second admin's approval, as does an admin's first invite of one when another admin could approve it;
 * each passkey of the user sees a notice until it acknowledges the recovery (or that first enrollment);
 * the recovery time drives the quorum cool-down.
 */
export class RecoveryApproval1764450000000 implements MigrationInterface {
  name = 'RecoveryApproval1764450000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      ALTER TABLE enrollment_invites
        ADD COLUMN recovery boolean NOT NULL DEFAULT false,
        ADD COLUMN needs_second_admin boolean NOT NULL DEFAULT false,
        ADD COLUMN enrollment_notice boolean NOT NULL DEFAULT false,
        ADD COLUMN break_glass boolean NOT NULL DEFAULT false,
        ADD COLUMN approved_by uuid REFERENCES users (id),
        ADD COLUMN approved_at timestamptz,
        ADD CONSTRAINT enrollment_invites_approval_check CHECK (
          (approved_by IS NULL) = (approved_at IS NULL) AND (approved_by IS NULL OR needs_second_admin)
          AND (NOT needs_second_admin OR recovery OR enrollment_notice)
          AND NOT (recovery AND enrollment_notice))`);
    // Earlier invites were recoveries when the user already held a passkey (the definition from now on).
    await queryRunner.query(`
      UPDATE enrollment_invites i SET recovery = true
       WHERE EXISTS (SELECT 1 FROM authenticators a WHERE a.user_id = i.user_id AND a.created_at < i.created_at)`);
    // Whether a recovery needs a second admin depends on the policy in force, which a migration cannot read:
    // rather than let an old link recover a privileged user alone, every unused recovery link ends here.
    await queryRunner.query(`
      UPDATE enrollment_invites SET expires_at = now()
       WHERE recovery AND used_at IS NULL AND expires_at > now()`);
    // The quorum cool-down asks "when was this approver last recovered?".
    await queryRunner.query(
      `CREATE INDEX enrollment_invites_recovered_idx ON enrollment_invites (user_id, used_at)
        WHERE recovery AND used_at IS NOT NULL`,
    );
    await queryRunner.query(`
      CREATE TABLE recovery_acknowledgements (
        invite_id uuid NOT NULL REFERENCES enrollment_invites (id),
        authenticator_id uuid NOT NULL REFERENCES authenticators (id),
        acknowledged_at timestamptz NOT NULL,
        PRIMARY KEY (invite_id, authenticator_id)
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE recovery_acknowledgements`);
    await queryRunner.query(`DROP INDEX enrollment_invites_recovered_idx`);
    await queryRunner.query(`
      ALTER TABLE enrollment_invites
        DROP CONSTRAINT enrollment_invites_approval_check,
        DROP COLUMN approved_at,
        DROP COLUMN approved_by,
        DROP COLUMN break_glass,
        DROP COLUMN enrollment_notice,
        DROP COLUMN needs_second_admin,
        DROP COLUMN recovery`);
  }
}
