import type { Pool, PoolClient, QueryResultRow } from 'pg';
import type { EntityManager } from 'typeorm';

/**
 * Runs a statement as a pg named prepared statement on the manager's connection (its transaction's, or a
 * pooled one): each connection plans it once instead of on every call, and TypeORM builds nothing. A name
 * stands for one text only (pg refuses the same name with another text on a connection).
 */
export async function namedQuery<R extends QueryResultRow>(
  manager: EntityManager,
  name: string,
  text: string,
  values: unknown[],
): Promise<R[]> {
  const runner = manager.queryRunner as unknown as { databaseConnection?: PoolClient } | undefined;
  const client: Pick<Pool, 'query'> =
    runner?.databaseConnection ?? (manager.connection.driver as unknown as { master: Pool }).master;
  const { rows } = await client.query<R>({ name, text, values });
  return rows;
}
