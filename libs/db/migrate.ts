import { loadDatabaseUrlOrExit } from '../config/config.js';
import { createDataSource, runMigrations } from './data-source.js';

// `npm run migrate`: apply pending migrations to DATABASE_URL and exit.
const dataSource = createDataSource(loadDatabaseUrlOrExit(), { poolSize: 2, applicationName: 'jit-migrate' });
await dataSource.initialize();
try {
  const applied = await runMigrations(dataSource);
  console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'No pending migrations.');
} finally {
  await dataSource.destroy();
}
