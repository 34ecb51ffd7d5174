import type { DataSource } from 'typeorm';
import type { PrivilegedRole } from '../db/database.module.js';
import { AuditAction } from './audit-actions.js';
import { appendAuditEvent, SYSTEM_ACTOR } from './audit-log.js';

/**
 * Records at boot that a process runs, by ALLOW_PRIVILEGED_DATABASE_ROLE=true, as a role that could rewrite the
 * trail: an alert an auditor sees in the trail itself, whatever the log level.
 */
export async function auditPrivilegedRole(dataSource: DataSource, privileged: PrivilegedRole): Promise<void> {
  await dataSource.transaction((manager) =>
    appendAuditEvent(manager, {
      actorId: SYSTEM_ACTOR,
      action: AuditAction.DatabasePrivilegedRole,
      subjectType: 'database-role',
      subjectId: privileged.role,
      data: { alert: true, application: privileged.application, reasons: privileged.reasons },
    }),
  );
}
