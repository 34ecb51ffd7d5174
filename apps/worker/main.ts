import { loadConfigOrExit } from '../../libs/config/config.js';
import { DatabaseSetupError } from '../../libs/db/runtime-privileges.js';
import { createWorker } from './bootstrap.js';
import { closeOnSignals } from './shutdown.js';

try {
  closeOnSignals(await createWorker(loadConfigOrExit()));
} catch (error) {
  // A database that is behind or a privileged role is an operator error: say what to fix, not a stack trace.
  if (!(error instanceof DatabaseSetupError)) throw error;
  console.error(error.message);
  process.exit(1);
}
