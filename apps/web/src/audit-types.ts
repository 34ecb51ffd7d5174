// The audit API's answers as the auditor's pages read them (GET /api/audit/events, /requests/:id/chain); the
// shapes the broker shares are declared once, in libs/audit/audit-wire.ts.
import type { BundleGrant, ChainStep, ExportedEvent } from '../../../libs/audit/audit-wire.js';

export type { ChainStep } from '../../../libs/audit/audit-wire.js';

/** One event of the hash chain, as exported: `hash` = sha256(prevHash ‖ JCS(event without hash)). */
export type AuditEvent = ExportedEvent;

export interface AuditEventPage {
  items: AuditEvent[];
  nextCursor: string | null;
  /** User id → username for the page's actors. */
  usernames: Record<string, string>;
  /** The user id the `actor` filter named. */
  actorId: string | null;
}

/** The filters of GET /api/audit/events and POST /api/audit/export (times ISO 8601, `to` exclusive). */
export interface AuditFilters {
  from?: string;
  to?: string;
  actorId?: string;
  action?: string;
  requestId?: string;
  entitlementId?: string;
}

export interface RequestChain {
  requestId: string;
  request: {
    id: string;
    requester: string;
    entitlementId: string;
    justification: string;
    ticket: string | null;
    policyHash: string;
    state: string;
    approvalsRequired: number;
    createdAt: string;
    endedAt: string | null;
    endReason: string | null;
  };
  policyVersion: { hash: string; loadedAt: string; loadedBy: string } | null;
  grants: BundleGrant[];
  steps: ChainStep[];
}

/** The actions an auditor filters by most, for the action field's suggestions. */
export const COMMON_ACTIONS = [
  'request.created',
  'approval.recorded',
  'request.approved',
  'request.denied',
  'request.activated',
  'grant.issued',
  'request.revoked',
  'grant.revoked',
  'grant.revoke_failed',
  'request.ended',
  'request.expired',
  'break-glass.activated',
  'policy.activated',
  'invite.created',
  'session.started',
  'audit.exported',
] as const;

/** The command that verifies a downloaded export or bundle against the broker's published audit keys. */
export function verifyCommand(file: string): string {
  return `npm run cli -- audit verify ${file} --jwks ${location.origin}/.well-known/audit-jwks.json`;
}

/** Offers `blob` to the browser as a download named `fileName`. */
export function downloadBlob(blob: Blob, fileName: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has started from the URL; free it once the click is handled.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
