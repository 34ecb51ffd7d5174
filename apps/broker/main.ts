import { Logger } from '@nestjs/common';
import { loadConfigOrExit } from '../../libs/config/config.js';
import { createBroker } from './bootstrap.js';

const config = loadConfigOrExit();
const app = await createBroker(config);
await app.listen(config.http.port, config.http.host);
new Logger('Broker').log(
  `Listening on ${config.http.host}:${config.http.port}, public URL ${config.http.publicUrl}`,
);
