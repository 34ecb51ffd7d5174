import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every authenticated call asks whether the session's passkey has a recovery notice to see (issue 15: in
 * the session lookup, so GET /api/me needs no second statement): the used invites that carry a notice, by
 * user, without a scan of every invite ever sent.
 */
export class NoticeIndex1764800000000 implements MigrationInterface {
  name = 'NoticeIndex1764800000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE INDEX enrollment_invites_notice_idx ON enrollment_invites (user_id, used_at)
        WHERE (recovery OR enrollment_notice) AND used_at IS NOT NULL`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX enrollment_invites_notice_idx`);
  }
}
