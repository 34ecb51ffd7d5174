import { Logger } from '@nestjs/common';
import { loadConfigOrExit } from '../../libs/config/config.js';
import { PolicyError } from '../../libs/domain/policy.js';
import { createBroker } from './bootstrap.js';

const config = loadConfigOrExit();
try {
  const app = await createBroker(config);
  await app.listen(config.http.port, config.http.host);
  new Logger('Broker').log(
    `Listening on ${config.http.host}:${config.http.port}, public URL ${config.http.publicUrl}`,
  );
} catch (error) {
  // An invalid policy at boot is an operator error: say which file and line, not a stack trace.
  console.error(error instanceof PolicyError ? `Refusing to start: ${error.message}` : error);
  process.exit(1);
}
