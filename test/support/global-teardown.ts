import type { E2eServices } from './global-setup.js';

/** Stops the PostgreSQL and Redis children globalSetup started and removes their temp dirs. */
export default async function globalTeardown(): Promise<void> {
  const services: E2eServices | undefined = globalThis.__jitE2eServices;
  globalThis.__jitE2eServices = undefined;
  await services?.stop();
}
