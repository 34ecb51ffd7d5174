import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * When the activation window of a scheduled request opened (issue 14): a column, so the audit log stops
 * serving as state. Backfilled from the `request.window-opened` events written so far (still written).
 */
export class WindowOpened1764500000000 implements MigrationInterface {
  name = 'WindowOpened1764500000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE elevation_requests ADD COLUMN window_opened_at timestamptz NULL`);
    await queryRunner.query(`
      UPDATE elevation_requests r SET window_opened_at = e.opened_at
        FROM (SELECT request_id, min(at) AS opened_at FROM audit_events
               WHERE action = 'request.window-opened' GROUP BY request_id) e
       WHERE e.request_id = r.id`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE elevation_requests DROP COLUMN window_opened_at`);
  }
}
