import type { UserRole } from '../db/index.js';

/** The authenticated person on whose behalf a service method runs. */
export interface Actor {
  id: string;
  username: string;
  displayName: string;
  roles: readonly UserRole[];
}
