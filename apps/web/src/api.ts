// The broker's JSON API (DESIGN §10), same-origin: the session cookie rides along, the browser sends Origin.
import { WebAuthnError } from '@simplewebauthn/browser';

/** A refusal from the broker, from its error envelope `{ error: { code, message } }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The envelope's `details`, when given (a cool-down's `retryAfterSeconds`, the fields that failed). */
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Codes that mean "no (valid) session": the app goes to the sign-in page. Step-up failures are not among them. */
const SIGNED_OUT_CODES = new Set(['UNAUTHENTICATED', 'SESSION_EXPIRED']);

let onSignedOut: () => void = () => {};

/** What to do when a call finds the session gone (set once by the app). */
export function whenSignedOut(handler: () => void): void {
  onSignedOut = handler;
}

async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown, background = false): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  // Not asked for by the person (a refetch on a live event, polling): the broker does not extend the session.
  if (background) headers['x-background'] = '1';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await response.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!response.ok) {
    const envelope = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)
      ?.error;
    const code = typeof envelope?.code === 'string' ? envelope.code : `HTTP_${response.status}`;
    const message =
      typeof envelope?.message === 'string' ? envelope.message : `The broker answered ${response.status}`;
    if (response.status === 401 && SIGNED_OUT_CODES.has(code)) onSignedOut();
    throw new ApiError(response.status, code, message, envelope?.details);
  }
  return parsed as T;
}

export const api = {
  get: <T>(path: string, { background = false }: { background?: boolean } = {}) =>
    call<T>('GET', path, undefined, background),
  post: <T>(path: string, body: unknown = {}) => call<T>('POST', path, body),
};

/** A sentence for the person in front of the screen, whatever failed. */
export function describeError(error: unknown): string {
  // The broker's message is written for people; its code is for programs and stays off the screen.
  if (error instanceof ApiError) return error.message;
  if (error instanceof WebAuthnError && error.code === 'ERROR_CEREMONY_ABORTED') {
    return 'The passkey prompt was cancelled.';
  }
  if (error instanceof Error && error.name === 'NotAllowedError') {
    return 'The passkey prompt was cancelled or timed out.';
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface Me {
  id: string;
  username: string;
  displayName: string | null;
  roles: string[];
  groups: string[];
  /** Present while the account was recovered (or enrolled from a privileged invite) and this passkey has not acknowledged it. */
  recoveryNotices?: RecoveryNotice[];
}

export interface RecoveryNotice {
  /** `enrollment`: the account's first passkey came from an admin's invite that makes it privileged. */
  kind: 'recovery' | 'enrollment';
  inviteId: string;
  recoveredAt: string;
  createdBy: string;
  approvedBy: string | null;
  approvedAt: string | null;
  breakGlass: boolean;
}

export interface Entitlement {
  id: string;
  title: string;
  /** What it lets one do, in the policy's words; null when the policy gives none. */
  description: string | null;
  connectorType: string | null;
  maxDurationSeconds: number;
  /** `ticketHint`: the ticket format in words, when the policy gives it (shown instead of the pattern). */
  requires: { justification: boolean; ticketPattern: string | null; ticketHint?: string };
  approvalsRequired: number;
  breakGlass: boolean;
  selfService: boolean;
  eligible: boolean;
  approver: boolean;
  /** Break-glass whose uses this person may review afterwards. */
  reviewer: boolean;
}

export interface ElevationRequest {
  id: string;
  requesterId: string;
  requester: string | null;
  entitlementId: string;
  scope: Record<string, unknown>;
  durationSeconds: number;
  justification: string;
  ticket: string | null;
  notBefore: string | null;
  breakGlass: boolean;
  approvalsRequired: number;
  state: string;
  createdAt: string;
  pendingUntil: string | null;
  decidedAt: string | null;
  activateBy: string | null;
  activatedAt: string | null;
  notAfter: string | null;
  endedAt: string | null;
  endReason: string | null;
  /** The credential once minted: REVOKING until the connector confirms a revoke. */
  grant: GrantStatus | null;
  extendsRequestId?: string | null;
  sshPublicKey?: string | null;
  /** On GET /api/requests/:id only: each approver's decision, oldest first (a deny's comment is its reason). */
  decisions?: Decision[];
  reviewDueAt?: string | null;
  reviewedAt?: string | null;
  overdue?: boolean;
  /** 'workload' when a non-human requester (a CI job, a deploy bot) filed it with its OIDC token (issue 21). */
  requesterKind?: 'person' | 'workload';
  workload?: WorkloadRef | null;
}

/** The workload behind a workload's request: its policy id, the group accountable for it, its token's identity. */
export interface WorkloadRef {
  id: string;
  title: string | null;
  ownerGroup: string;
  issuer: string;
  subject: string;
}

export interface Decision {
  approver: string;
  decision: 'approve' | 'deny';
  comment: string | null;
  at: string;
}

export interface GrantStatus {
  state: 'ACTIVE' | 'REVOKING' | 'REVOKED' | 'REVOKE_FAILED';
  revokeAttempts: number;
  nextRetryAt: string | null;
  /** When the connector confirmed the revoke. */
  revokedAt: string | null;
  lastError: string | null;
}

/** A minted credential, shown once: `type` and `notAfter`, plus the connector's fields (token, password…). */
export interface Credential {
  type: string;
  notAfter: string;
  [field: string]: unknown;
}

export interface Activation {
  request: ElevationRequest;
  credential: Credential;
}

export interface Passkey {
  id: string;
  name: string | null;
  backupEligible: boolean;
  backedUp: boolean;
  enrolledVia: string;
  createdAt: string;
  lastUsedAt: string | null;
  disabledAt: string | null;
  disabledReason: string | null;
}

export interface SignedIn {
  user: { id: string; username: string; displayName: string | null; roles: string[] };
  sessionExpiresAt: string;
}
