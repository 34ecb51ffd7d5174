import { loadMigrationSettingsOrExit } from '../config/config.js';
import { connectedRole, migrateAsOwner } from './data-source.js';

// `npm run migrate`: as the owner role (MIGRATION_DATABASE_URL), apply pending migrations and grant the runtime
// role (DATABASE_URL's) exactly its privileges; then exit.
const { ownerUrl, runtimeUrl } = loadMigrationSettingsOrExit();
const runtimeRole = runtimeUrl === null ? null : await connectedRole(runtimeUrl);
const applied = await migrateAsOwner(ownerUrl, runtimeRole);
console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'No pending migrations.');
if (runtimeRole === null) {
  console.log("MIGRATION_DATABASE_URL is not set: migrated as DATABASE_URL's role and granted nothing.");
} else {
  console.log(`Granted the runtime role ${runtimeRole} its privileges.`);
}
