import { loadInviteSettingsOrExit } from '../../libs/config/config.js';
import type { UserRole } from '../../libs/db/index.js';
import { createDataSource, prepareSchema } from '../../libs/db/data-source.js';
import { DomainError } from '../../libs/domain/errors.js';
import { createInvite } from '../../libs/identity/invites.js';

const USAGE =
  'usage: npm run cli -- invite <username> [--role admin|auditor]... [--display-name "Name"] [--break-glass]';
const ROLES: readonly UserRole[] = ['admin', 'auditor'];

/**
 * `invite <username> [--role admin|auditor]`: a one-time enrollment link, printed once. For bootstrap and
 * recovery by whoever holds the database credentials; audited with actor `cli`. Recovering a privileged
 * user (libs/domain/recovery-rules.ts) skips the second admin the API demands, so it needs `--break-glass`
 * and is flagged and alerted in the audit trail. Returns the exit code.
 */
export async function inviteCommand(args: string[]): Promise<number> {
  const roles: UserRole[] = [];
  let displayName: string | null = null;
  let breakGlass = false;
  const positional: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const arg = args[index];
    if (arg === '--role') {
      const role = args[++index] as UserRole;
      if (!ROLES.includes(role)) {
        console.error(`--role must be one of ${ROLES.join(', ')}\n${USAGE}`);
        return 2;
      }
      roles.push(role);
    } else if (arg === '--break-glass') {
      breakGlass = true;
    } else if (arg === '--display-name') {
      displayName = args[++index] ?? null;
    } else if (arg.startsWith('--')) {
      console.error(`unknown option ${arg}\n${USAGE}`);
      return 2;
    } else {
      positional.push(arg);
    }
  }
  if (positional.length !== 1) {
    console.error(USAGE);
    return 2;
  }
  const settings = loadInviteSettingsOrExit();
  const dataSource = createDataSource(settings.databaseUrl, { poolSize: 2, applicationName: 'jit-cli' });
  await dataSource.initialize();
  try {
    // Migrates as the owner role when MIGRATION_DATABASE_URL is set; otherwise the schema must be current.
    await prepareSchema(dataSource, settings.migrationDatabaseUrl);
    const invite = await dataSource.transaction((manager) =>
      createInvite(
        manager,
        settings,
        'cli',
        { username: positional[0], displayName, roles },
        { privilegedRecovery: breakGlass ? 'break-glass' : 'refuse' },
      ),
    );
    console.log(
      `${invite.newUser ? 'New user' : 'Recovery invite for existing user'} ${positional[0]}` +
        ` (one use, until ${invite.expiresAt.toISOString()}):\n${invite.url}`,
    );
    if (invite.breakGlass) {
      console.error(
        `WARNING: break-glass recovery of ${positional[0]} without a second admin; audited with an alert.` +
          ' Their sessions end when the link is used, and their approvals do not count toward quorum during' +
          ' the recovery cool-down.',
      );
    }
    return 0;
  } catch (error) {
    if (error instanceof DomainError) {
      console.error(`${error.code}: ${error.message}`);
      return 1;
    }
    throw error;
  } finally {
    await dataSource.destroy();
  }
}
