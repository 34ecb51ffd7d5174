import type { DataSource } from 'typeorm';

/**
 * Deletes ceremony and step-up challenges that expired more than a day ago (the day keeps spent ones for
 * diagnosis); the sweeper runs it, so anonymous sign-in attempts cannot grow the tables without bound.
 */
export async function purgeExpiredChallenges(dataSource: DataSource): Promise<number> {
  const [, ceremonies] = (await dataSource.query(
    `DELETE FROM webauthn_ceremonies WHERE expires_at < now() - interval '1 day'`,
  )) as [unknown, number];
  const [, challenges] = (await dataSource.query(
    `DELETE FROM step_up_challenges WHERE expires_at < now() - interval '1 day'`,
  )) as [unknown, number];
  return ceremonies + challenges;
}
