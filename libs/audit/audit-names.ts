// Names for the ids an audit event holds, for people reading the trail (the events page, a request's chain).
import { rowsOf, runQuery, type AuditSource } from './export.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** User id → username for the ids that are users' (`system`, `cli` and unknown ids are left out). */
export async function usernamesOf(source: AuditSource, ids: Iterable<string>): Promise<Map<string, string>> {
  const userIds = [...new Set(ids)].filter((id) => UUID.test(id));
  if (userIds.length === 0) return new Map();
  const rows = rowsOf(
    await runQuery(source, 'SELECT id, username FROM users WHERE id = ANY($1::uuid[])', [userIds]),
  ) as Array<{ id: string; username: string }>;
  return new Map(rows.map((row) => [row.id, row.username]));
}

/** The id of the user named `username`, or null when there is none. */
export async function userIdOf(source: AuditSource, username: string): Promise<string | null> {
  const [row] = rowsOf(
    await runQuery(source, 'SELECT id FROM users WHERE username = $1', [username]),
  ) as Array<{
    id: string;
  }>;
  return row?.id ?? null;
}

/** Credential id → the passkey's name, for the credentials the broker knows (removed ones included). */
export async function authenticatorNamesOf(
  source: AuditSource,
  credentialIds: Iterable<string>,
): Promise<Map<string, string>> {
  const ids = [...new Set(credentialIds)];
  if (ids.length === 0) return new Map();
  const rows = rowsOf(
    await runQuery(
      source,
      'SELECT credential_id AS "credentialId", name FROM authenticators WHERE credential_id = ANY($1::text[])',
      [ids],
    ),
  ) as Array<{ credentialId: string; name: string }>;
  return new Map(rows.map((row) => [row.credentialId, row.name]));
}
