// The actor lives in libs/domain; this path stays for the many importers outside libs/elevation.
export type { Actor } from '../domain/actor.js';
