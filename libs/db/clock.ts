import type { EntityManager } from 'typeorm';

/**
 * PostgreSQL's clock: every time that decides state comes from the database (DESIGN §4). clock_timestamp(),
 * not now(): now() is the transaction's start, before any lock wait, and a deadline checked after waiting
 * must see the time it is checked at.
 */
export async function databaseNow(manager: EntityManager): Promise<Date> {
  const [{ now }] = (await manager.query('SELECT clock_timestamp() AS now')) as Array<{ now: Date }>;
  return now;
}
