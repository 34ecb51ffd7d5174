import { loadConfigOrExit } from '../../libs/config/config.js';
import { createWorker } from './bootstrap.js';

await createWorker(loadConfigOrExit());
