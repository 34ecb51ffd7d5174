import { loadMigrationSettingsOrExit } from '../config/config.js';
import { createDataSource, runMigrations } from './data-source.js';

// `npm run migrate`: as the owner role (MIGRATION_DATABASE_URL), apply pending migrations and grant the runtime
// role (DATABASE_URL's) exactly its privileges; then exit.
const { ownerUrl, runtimeUrl } = loadMigrationSettingsOrExit();
const runtimeRole = runtimeUrl === null ? null : await connectedRole(runtimeUrl);
const dataSource = createDataSource(ownerUrl, { poolSize: 2, applicationName: 'jit-migrate' });
await dataSource.initialize();
try {
  const applied = await runMigrations(dataSource, { runtimeRole });
  console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'No pending migrations.');
  if (runtimeRole === null) {
    console.log("MIGRATION_DATABASE_URL is not set: migrated as DATABASE_URL's role and granted nothing.");
  } else {
    console.log(`Granted the runtime role ${runtimeRole} its privileges.`);
  }
} finally {
  await dataSource.destroy();
}

/** The role a URL logs in as, asked of the server: the URL's user name may be an alias (a pooler's, a cloud's). */
async function connectedRole(url: string): Promise<string> {
  const runtime = createDataSource(url, { poolSize: 1, applicationName: 'jit-migrate' });
  await runtime.initialize();
  try {
    const [{ role }] = (await runtime.query('SELECT current_user AS role')) as Array<{ role: string }>;
    return role;
  } finally {
    await runtime.destroy();
  }
}
