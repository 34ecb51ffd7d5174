import { DomainError, ErrorCode } from '../domain/errors.js';
import type { RequestSubject } from '../webauthn/step-up-binding.js';
import type { BundleGrant } from './audit-wire.js';
import type { BundleTransparency } from './bundle-transparency.js';
import { readAuditEventPages, readChainHead, rowsOf, runQuery, type AuditSource } from './export.js';
import {
  canonicalDigest,
  EventsDigest,
  type ExportedEvent,
  type ExportManifest,
  type ManifestSigner,
} from './manifest.js';

/** A request as a bundle carries it: the immutable fields its step-up digest covers, then state and times (ISO). */
export interface BundleRequest extends RequestSubject {
  approvalsRequired: number;
  state: string;
  createdAt: string;
  pendingUntil: string | null;
  decidedAt: string | null;
  activateBy: string | null;
  activatedAt: string | null;
  endsAt: string | null;
  endedAt: string | null;
  endReason: string | null;
}

/** The policy version a request was filed under; `hash` is sha256 (hex) of JCS(content). */
export interface BundlePolicyVersion {
  hash: string;
  content: unknown;
  loadedAt: string;
  loadedBy: string;
}

export type { BundleGrant } from './audit-wire.js';

/**
 * The approval chain of one request, verifiable offline with verifyBundle: the request, its policy version,
 * its grants and every audit event of the request (creation, each approval with its WebAuthn evidence and
 * the authenticator's public key, activation, issue, revocation). The manifest signs the events like an
 * export's (format "bundle", filters { requestId }) and the rest through attachmentsDigest.
 */
export interface RequestBundle {
  type: 'bundle';
  version: 1;
  requestId: string;
  request: BundleRequest;
  policyVersion: BundlePolicyVersion | null;
  grants: BundleGrant[];
  events: ExportedEvent[];
  manifest: ExportManifest;
  /** The events' inclusion in a signed checkpoint of the Merkle tree; outside the manifest, self-verifying. */
  transparency?: BundleTransparency;
}

export interface BundleSigning {
  signManifest: ManifestSigner;
  /** The exporting user's id. */
  exporter: string;
  rpId: string;
  origins: readonly string[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Reads and signs the bundle of one request; null when there is no such request. */
export async function buildRequestBundle(
  source: AuditSource,
  requestId: string,
  signing: BundleSigning,
): Promise<RequestBundle | null> {
  if (!UUID.test(requestId)) throw new DomainError(ErrorCode.INVALID_ID, 'requestId must be a UUID');
  // Rows before the chain head: every state change commits with its audit event, so the events read up to a
  // later head always explain the request and grant rows (the reverse order could show a state no event has).
  const [requestRow] = rowsOf(
    await runQuery(
      source,
      `SELECT id, requester_id AS "requesterId", entitlement_id AS "entitlementId", policy_hash AS "policyHash",
              scope, duration_seconds AS "durationSeconds", justification, ticket, not_before AS "notBefore",
              break_glass AS "breakGlass", extends_request_id AS "extendsRequestId",
              ssh_public_key AS "sshPublicKey", approvals_required AS "approvalsRequired", state, created_at AS "createdAt",
              pending_until AS "pendingUntil", decided_at AS "decidedAt", activate_by AS "activateBy",
              activated_at AS "activatedAt", ends_at AS "endsAt", ended_at AS "endedAt", end_reason AS "endReason"
         FROM elevation_requests WHERE id = $1`,
      [requestId],
    ),
  ) as Array<Record<string, unknown>>;
  if (requestRow === undefined) return null;
  const grantRows = rowsOf(
    await runQuery(
      source,
      `SELECT id, connector, connector_type AS "connectorType", fingerprint, issued_at AS "issuedAt",
              not_after AS "notAfter", state, revoked_at AS "revokedAt", revoke_attempts AS "revokeAttempts"
         FROM grants WHERE request_id = $1 ORDER BY issued_at, id`,
      [requestId],
    ),
  ) as Array<Record<string, unknown>>;
  const [policyRow] = rowsOf(
    await runQuery(
      source,
      `SELECT hash, content, loaded_at AS "loadedAt", loaded_by AS "loadedBy" FROM policy_versions WHERE hash = $1`,
      [requestRow.policyHash],
    ),
  ) as Array<Record<string, unknown>>;
  const head = await readChainHead(source);
  const events: ExportedEvent[] = [];
  for await (const page of readAuditEventPages(source, { requestId }, head.seq)) events.push(...page);

  const request = jsonRow(requestRow) as unknown as BundleRequest;
  const grants = grantRows.map((row) => {
    const grant = jsonRow(row) as unknown as Omit<BundleGrant, 'revocationLagMs'>;
    const lag = grant.revokedAt === null ? null : Date.parse(grant.revokedAt) - Date.parse(grant.notAfter);
    return { ...grant, revocationLagMs: lag };
  });
  const policyVersion =
    policyRow === undefined ? null : (jsonRow(policyRow) as unknown as BundlePolicyVersion);
  return signRequestBundle(
    { requestId, request, policyVersion, grants, events },
    { seq: head.seq, hash: head.hash, exportedAt: head.now.toISOString() },
    signing,
  );
}

/** Signs the parts of a bundle; pure apart from the signer, so it is tested without a database. */
export async function signRequestBundle(
  parts: Pick<RequestBundle, 'requestId' | 'request' | 'policyVersion' | 'grants' | 'events'>,
  head: { seq: number; hash: string; exportedAt: string },
  signing: BundleSigning,
): Promise<RequestBundle> {
  const { requestId, request, policyVersion, grants, events } = parts;
  const digest = new EventsDigest();
  for (const event of events) digest.add(event.hash);
  const last = events.at(-1);
  const body = {
    type: 'manifest' as const,
    version: 1 as const,
    format: 'bundle' as const,
    count: events.length,
    firstSeq: events[0]?.seq ?? null,
    lastSeq: last?.seq ?? null,
    lastHash: last?.hash ?? null,
    eventsDigest: digest.hex(),
    filters: { requestId },
    chainHead: { seq: head.seq, hash: head.hash },
    exporter: signing.exporter,
    exportedAt: head.exportedAt,
    rpId: signing.rpId,
    origins: [...signing.origins],
    attachmentsDigest: canonicalDigest({ request, policyVersion, grants }),
  };
  const manifest: ExportManifest = { ...body, ...(await signing.signManifest(body)) };
  return { type: 'bundle', version: 1, requestId, request, policyVersion, grants, events, manifest };
}

/** A row with its timestamps as ISO strings (JCS has no date type). */
function jsonRow(row: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(row).map(([key, value]) => [key, value instanceof Date ? value.toISOString() : value]),
  );
}
