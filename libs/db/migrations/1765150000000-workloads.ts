import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 21: non-human requesters. A workload files requests under a users row of kind 'workload' (username
 * `workload:<id>`, which no person's can be: it holds ":"), and each of its requests keeps the identity its
 * OIDC token proved when it was filed (issuer, subject, token id) for approvers and auditors.
 */
export class Workloads1765150000000 implements MigrationInterface {
  name = 'Workloads1765150000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `ALTER TABLE users ADD COLUMN kind text NOT NULL DEFAULT 'person'
         CONSTRAINT users_kind_check CHECK (kind IN ('person', 'workload'))`,
    );
    await queryRunner.query(
      `ALTER TABLE users ADD CONSTRAINT users_workload_name_check
         CHECK ((kind = 'workload') = (username LIKE 'workload:%'))`,
    );
    await queryRunner.query(`ALTER TABLE elevation_requests ADD COLUMN requester_workload jsonb NULL`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE elevation_requests DROP COLUMN requester_workload`);
    await queryRunner.query(`ALTER TABLE users DROP CONSTRAINT users_workload_name_check`);
    await queryRunner.query(`ALTER TABLE users DROP COLUMN kind`);
  }
}
