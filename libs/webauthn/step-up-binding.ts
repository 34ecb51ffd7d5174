import { createHash, randomBytes } from 'node:crypto';
import { canonicalJson } from '../domain/canonical-json.js';

/** Purpose and version tag heading every challenge, so a later encoding or another signed array never matches one. */
export const STEP_UP_DOMAIN = 'jit-step-up/v1';

/** Every action a step-up can authorise (DESIGN §5); the type is derived so the list is the one source. */
export const STEP_UP_ACTIONS = Object.freeze([
  'approve',
  'deny',
  'activate',
  'revoke',
  'break-glass',
  'audit.export',
  'invite.create',
  'invite.approve',
  'policy.reload',
  'authenticator.add',
  'authenticator.remove',
  'authenticator.disable',
  'user.suspend',
  'user.roles',
  'user.email',
  'grant.retry-revoke',
] as const);

/** One action a step-up is bound to. */
export type StepUpAction = (typeof STEP_UP_ACTIONS)[number];

/** The immutable fields of a request that its step-up digest covers (DESIGN §4, plus the ssh key to certify). */
export interface RequestSubject {
  id: string;
  requesterId: string;
  entitlementId: string;
  policyHash: string;
  scope: Record<string, unknown>;
  durationSeconds: number;
  justification: string;
  ticket: string | null;
  /** ISO 8601 (`Date.prototype.toISOString`), because JCS has no date type. */
  notBefore: string | null;
  breakGlass: boolean;
  extendsRequestId: string | null;
  /** The OpenSSH public key an ssh grant certifies: what an approver approves must include whose key. */
  sshPublicKey: string | null;
}

/** RequestSubject's field names, for readers that pick them from plain data (the offline verifier). */
export const REQUEST_SUBJECT_FIELDS = Object.freeze([
  'id',
  'requesterId',
  'entitlementId',
  'policyHash',
  'scope',
  'durationSeconds',
  'justification',
  'ticket',
  'notBefore',
  'breakGlass',
  'extendsRequestId',
  'sshPublicKey',
] as const satisfies ReadonlyArray<keyof RequestSubject>);

/** The stored request as requestSubject reads it; extra columns (state, timestamps) are allowed and ignored. */
export type StoredRequest = Omit<RequestSubject, 'notBefore'> & { notBefore: Date | null };

// 32 bytes are 43 base64url characters without padding.
const BASE64URL_32_BYTES = /^[A-Za-z0-9_-]{43}$/;

/** subjectDigest = base64url(sha256(JCS(subject))); the subject must be plain JSON data. */
export function subjectDigest(subject: unknown): string {
  assertPlainJson(subject, '$');
  return createHash('sha256').update(canonicalJson(subject), 'utf8').digest('base64url');
}

/** The immutable fields of a stored request, picked explicitly (never spread a row: a new column must not silently join or leave the digest). */
export function requestSubject(request: StoredRequest): RequestSubject {
  const { notBefore } = request;
  if (notBefore !== null && Number.isNaN(notBefore.getTime())) {
    throw new TypeError('request.notBefore is an invalid Date');
  }
  return {
    id: request.id,
    requesterId: request.requesterId,
    entitlementId: request.entitlementId,
    policyHash: request.policyHash,
    scope: request.scope,
    durationSeconds: request.durationSeconds,
    justification: request.justification,
    ticket: request.ticket,
    notBefore: notBefore === null ? null : notBefore.toISOString(),
    breakGlass: request.breakGlass,
    extendsRequestId: request.extendsRequestId,
    sshPublicKey: request.sshPublicKey,
  };
}

/** challenge = sha256(JCS([STEP_UP_DOMAIN, nonce, userId, action, subjectId, subjectDigest])) as raw bytes; nonce and digest are base64url strings. */
export function stepUpChallenge(input: {
  nonce: string;
  userId: string;
  action: StepUpAction;
  subjectId: string;
  subjectDigest: string;
}): Buffer {
  const { nonce, userId, action, subjectId, subjectDigest: digest } = input;
  assertBase64Url32('nonce', nonce);
  assertNonEmptyString('userId', userId);
  if (!(STEP_UP_ACTIONS as readonly unknown[]).includes(action)) {
    throw new TypeError(`action ${JSON.stringify(action)} is not one of: ${STEP_UP_ACTIONS.join(', ')}`);
  }
  assertNonEmptyString('subjectId', subjectId);
  assertBase64Url32('subjectDigest', digest);
  // A JSON array keeps field boundaries explicit: plain concatenation of variable-length strings would let
  // ("u", "deny", "revoke1") and ("udeny", "revoke", "1") sign the same bytes (DESIGN §5).
  const encoded = canonicalJson([STEP_UP_DOMAIN, nonce, userId, action, subjectId, digest]);
  return createHash('sha256').update(encoded, 'utf8').digest();
}

/** A fresh 32-byte base64url nonce. */
export function newNonce(): string {
  return randomBytes(32).toString('base64url');
}

function assertNonEmptyString(name: string, value: unknown): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`${name} must be a non-empty string`);
  }
}

function assertBase64Url32(name: string, value: unknown): void {
  // The round trip rejects a non-zero final pad bit: Node would decode it to the same bytes, giving one
  // nonce or digest two spellings and so two different challenges.
  if (
    typeof value !== 'string' ||
    !BASE64URL_32_BYTES.test(value) ||
    Buffer.from(value, 'base64url').toString('base64url') !== value
  ) {
    throw new TypeError(`${name} must be the unpadded base64url encoding of exactly 32 bytes`);
  }
}

// canonicalize quietly turns undefined into a dropped key or null, a Date into a string and a Map into {},
// so the digest would cover something other than what the caller holds; refuse anything not plain JSON.
function assertPlainJson(value: unknown, path: string): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`${path} is not a finite number`);
    return;
  }
  if (Array.isArray(value)) {
    // An index loop, not forEach, so a hole (which canonicalize would write as null) is caught too.
    for (let index = 0; index < value.length; index++) assertPlainJson(value[index], `${path}[${index}]`);
    return;
  }
  if (typeof value === 'object') {
    const prototype = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) {
      throw new TypeError(`${path} is not a plain object (${prototype?.constructor?.name ?? 'unknown'})`);
    }
    for (const [key, item] of Object.entries(value)) assertPlainJson(item, `${path}.${key}`);
    return;
  }
  throw new TypeError(`${path} has no JSON form (${typeof value})`);
}
