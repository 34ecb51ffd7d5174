import type { EntityManager } from 'typeorm';

/** PostgreSQL's clock: every time that decides state comes from the database (DESIGN §4). */
export async function databaseNow(manager: EntityManager): Promise<Date> {
  const [{ now }] = (await manager.query('SELECT now() AS now')) as Array<{ now: Date }>;
  return now;
}
