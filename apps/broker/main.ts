import { Logger } from '@nestjs/common';
import { loadConfigOrExit } from '../../libs/config/config.js';
import { SYSTEM_ACTOR } from '../../libs/audit/audit-log.js';
import { PolicyError } from '../../libs/domain/policy.js';
import { PolicyService } from '../../libs/elevation/policy.service.js';
import { createBroker } from './bootstrap.js';

const config = loadConfigOrExit();
try {
  const app = await createBroker(config);
  await app.listen(config.http.port, config.http.host);
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
  // An invalid policy at boot is an operator error: say which file and line, not a stack trace.
  console.error(error instanceof PolicyError ? `Refusing to start: ${error.message}` : error);
  process.exit(1);
}
