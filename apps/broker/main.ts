import { Logger } from '@nestjs/common';
import { loadConfigOrExit } from '../../libs/config/config.js';
import { SYSTEM_ACTOR } from '../../libs/audit/audit-log.js';
import { DatabaseSetupError } from '../../libs/db/runtime-privileges.js';
import { PolicyError } from '../../libs/policy/policy-error.js';
import { PolicyService } from '../../libs/policy/policy.service.js';
import { createBroker } from './bootstrap.js';
import { closeOnSignals } from './shutdown.js';

const config = loadConfigOrExit();
try {
  const app = await createBroker(config);
  await app.listen(config.http.port, config.http.host);
  closeOnSignals(app, config.shutdownGraceMs);
  const logger = new Logger('Broker');
  logger.log(`Listening on ${config.http.host}:${config.http.port}, public URL ${config.http.publicUrl}`);
  // SIGHUP reloads POLICY_DIR; an invalid policy is logged with file and line, and the old one stays.
  process.on('SIGHUP', () => {
    app
      .get(PolicyService)
      .loadFromDirectory(SYSTEM_ACTOR)
      .catch((error: unknown) =>
        logger.error(
          `Policy reload refused, the previous version stays in force: ${(error as Error).message}`,
        ),
      );
  });
} catch (error) {
  // An invalid policy or database setup at boot is an operator error: say what to fix, not a stack trace.
  if (error instanceof PolicyError) console.error(`Refusing to start: ${error.message}`);
  else console.error(error instanceof DatabaseSetupError ? error.message : error);
  process.exit(1);
}
