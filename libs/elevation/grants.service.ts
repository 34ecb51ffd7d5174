import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { GrantState } from '../db/index.js';

/** A grant as operators list it, with the request it serves. */
export interface GrantListItem {
  id: string;
  requestId: string;
  connector: string;
  connectorType: string;
  fingerprint: string;
  issuedAt: Date;
  notAfter: Date;
  state: GrantState;
  revokedAt: Date | null;
  revokeAttempts: number;
  lastError: string | null;
  requester: string;
  entitlementId: string;
}

/**
 * Grants, read side. Reads only for now: issuing and revoking still run in RequestsService and
 * RevocationService until this service becomes the grants' one writer (issue 14, step 3).
 */
@Injectable()
export class GrantsService {
  constructor(private readonly dataSource: DataSource) {}

  /** Grants newest first, optionally in one state; keyset-paginated by id (`cursor` is the last id seen). */
  async list(query: {
    state: GrantState | null;
    cursor: string | null;
    limit: number;
  }): Promise<{ items: GrantListItem[]; nextCursor: string | null }> {
    const rows = (await this.dataSource.query(
      `SELECT g.id, g.request_id AS "requestId", g.connector, g.connector_type AS "connectorType",
              g.fingerprint, g.issued_at AS "issuedAt", g.not_after AS "notAfter", g.state,
              g.revoked_at AS "revokedAt", g.revoke_attempts AS "revokeAttempts", g.last_error AS "lastError",
              u.username AS requester, r.entitlement_id AS "entitlementId"
         FROM grants g JOIN elevation_requests r ON r.id = g.request_id JOIN users u ON u.id = r.requester_id
        WHERE ($1::text IS NULL OR g.state = $1) AND ($2::uuid IS NULL OR g.id < $2)
        ORDER BY g.id DESC LIMIT $3`,
      [query.state, query.cursor, query.limit + 1],
    )) as GrantListItem[];
    const items = rows.slice(0, query.limit);
    return { items, nextCursor: rows.length > query.limit ? items[items.length - 1].id : null };
  }
}
