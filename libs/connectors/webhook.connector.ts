import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { canonicalJson } from '../domain/canonical-json.js';
import type { Connector, Credential, GrantSpec, Minted, RevokeContext } from './connector.js';

/** Unix seconds of the delivery; signed together with the body. */
export const WEBHOOK_TIMESTAMP_HEADER = 'X-JIT-Timestamp';
/** `sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">`. */
export const WEBHOOK_SIGNATURE_HEADER = 'X-JIT-Signature';
/** A UUIDv7 per delivery attempt, also in the signed body as `deliveryId`: for logs, not for deduplication. */
export const WEBHOOK_DELIVERY_HEADER = 'X-JIT-Delivery';
/**
 * One per operation, the same on every retry of it: `mint:<grantId>` or `revoke:<grantId>`; also in the
 * signed body as `idempotencyKey`. Receivers deduplicate on it.
 */
export const WEBHOOK_IDEMPOTENCY_HEADER = 'Idempotency-Key';
/** How long a delivery may take, connecting and reading the answer included, unless the constructor says otherwise. */
export const DEFAULT_WEBHOOK_TIMEOUT_MS = 5_000;
/** The replay window receivers should allow: wide enough for clock drift, narrow enough to bound replays. */
export const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300;
const SIGNATURE_HEADER_VALUE = /^sha256=([0-9a-f]{64})$/;
const TIMESTAMP_VALUE = /^[0-9]{1,12}$/;
// Printable ASCII without spaces: it is stored, logged and sent back verbatim.
const RECEIVER_EXTERNAL_REF = /^[\x21-\x7e]{1,200}$/;
// A credential is a handful of fields; anything bigger is a misbehaving receiver.
const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * What every delivery carries (no secret: the HMAC key never leaves the broker). A revoke knows the
 * externalRef and the grant id, so it sends null for the grant's other fields.
 */
export interface WebhookEvent {
  event: 'mint' | 'revoke';
  /** Also in the X-JIT-Delivery header; in the body it is signed, so receivers can refuse a replayed id. */
  deliveryId: string;
  /** Also in the Idempotency-Key header: `<event>:<grantId>`, the same on every retry of the operation. */
  idempotencyKey: string;
  grantId: string | null;
  requestId: string | null;
  subject: string | null;
  entitlementId: string | null;
  scope: Record<string, unknown> | null;
  notAfter: string | null;
  externalRef: string;
}

/** `sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">`, the X-JIT-Signature value. */
export function signWebhookBody(secret: string, timestamp: string, body: string | Buffer): string {
  return `sha256=${webhookHmac(secret, timestamp, body).toString('hex')}`;
}

/**
 * For receivers: true only when `header` is the HMAC of `timestamp` + the raw `body` under `secret` and the
 * timestamp is within `toleranceSeconds` of now. Verify the raw bytes received, never re-serialized JSON.
 */
export function verifyWebhookSignature(
  secret: string,
  timestamp: string | null | undefined,
  body: string | Buffer,
  header: string | null | undefined,
  toleranceSeconds: number = DEFAULT_WEBHOOK_TOLERANCE_SECONDS,
  now: Date = new Date(),
): boolean {
  if (!secret || typeof timestamp !== 'string' || !TIMESTAMP_VALUE.test(timestamp)) return false;
  if (Math.abs(Math.floor(now.getTime() / 1000) - Number(timestamp)) > toleranceSeconds) return false;
  const match = SIGNATURE_HEADER_VALUE.exec(header ?? '');
  if (!match) return false;
  // Both sides are 32 bytes here, so timingSafeEqual cannot throw and leaks nothing through timing.
  return timingSafeEqual(Buffer.from(match[1], 'hex'), webhookHmac(secret, timestamp, body));
}

/** The Idempotency-Key of an operation on a grant: `mint:<grantId>` or `revoke:<grantId>`. */
export function webhookIdempotencyKey(event: WebhookEvent['event'], grantId: string): string {
  return `${event}:${grantId}`;
}

function webhookHmac(secret: string, timestamp: string, body: string | Buffer): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
}

/** Where to deliver and the HMAC key; `connectorName` names the connector in errors (never the URL). */
export interface WebhookConnectorOptions {
  url: string;
  secret: string;
  connectorName: string;
  timeoutMs?: number;
}

/**
 * Signed POSTs to an external system on mint and revoke, for anything without its own connector
 * (DESIGN §7). A non-2xx answer or a timeout throws, so the revocation engine retries; 404 on revoke means
 * the receiver no longer knows the grant, which is what revoking wants.
 */
export class WebhookConnector implements Connector {
  readonly type = 'webhook';
  private readonly url: URL;
  private readonly timeoutMs: number;

  constructor(private readonly options: WebhookConnectorOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new Error(`Connector "${options.connectorName}": the webhook URL is not a valid URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new Error(`Connector "${options.connectorName}": the webhook URL must be http:// or https://`);
    }
    if (!options.secret) throw new Error(`Connector "${options.connectorName}": the webhook secret is empty`);
    this.url = url;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_WEBHOOK_TIMEOUT_MS;
  }

  async mint(grant: GrantSpec): Promise<Minted> {
    const notAfter = grant.notAfter.toISOString();
    const { status, body } = await this.deliver({
      event: 'mint',
      grantId: grant.grantId,
      requestId: grant.requestId,
      subject: grant.subject,
      entitlementId: grant.entitlementId,
      scope: grant.scope,
      notAfter,
      externalRef: grant.grantId,
    });
    if (status < 200 || status > 299) throw this.failure('mint', `answered ${status}`);
    // Throws on an unusable answer: the activation fails and the broker compensates (compensateMint).
    const answer = this.parseMintAnswer(body);
    // The receiver supplies the fields; type and notAfter are the broker's and cannot be overridden.
    const credential: Credential = { ...answer.credential, type: 'webhook', notAfter };
    return {
      credential,
      externalRef: answer.externalRef ?? grant.grantId,
      fingerprint: createHash('sha256').update(canonicalJson(credential)).digest('base64url'),
      notAfter: grant.notAfter,
    };
  }

  /**
   * What a receiver changes is shared by every grant of one subject, entitlement and scope (adding a user to
   * a group twice leaves one membership), so revoking one grant must not undo it while another still holds
   * it: `<connector>|<subject>|<entitlementId>|<sha256(JCS(scope)), base64url>`.
   */
  overlapKey(grant: GrantSpec): string {
    const scopeDigest = createHash('sha256').update(canonicalJson(grant.scope)).digest('base64url');
    return `${this.options.connectorName}|${grant.subject}|${grant.entitlementId}|${scopeDigest}`;
  }

  /**
   * Tells the receiver to take the grant back; 2xx or 404 (already gone) is success. Without the grant id
   * (a caller outside the broker), the Idempotency-Key is derived from the externalRef instead.
   */
  async revoke(externalRef: string, grant?: RevokeContext): Promise<void> {
    const { status } = await this.deliver({
      event: 'revoke',
      grantId: grant?.grantId ?? null,
      requestId: null,
      subject: null,
      entitlementId: null,
      scope: null,
      notAfter: null,
      externalRef,
    });
    if (status === 404 || (status >= 200 && status <= 299)) return;
    throw this.failure('revoke', `answered ${status}`);
  }

  /**
   * A mint that failed or timed out may still have been applied: revoke it under the grant id it was sent
   * with (and the externalRef a mint defaults to), with the same `revoke:<grantId>` key as any later revoke.
   */
  compensateMint(grant: GrantSpec): Promise<void> {
    return this.revoke(grant.grantId, { grantId: grant.grantId });
  }

  private async deliver(
    event: Omit<WebhookEvent, 'deliveryId' | 'idempotencyKey'>,
  ): Promise<{ status: number; body: string }> {
    const deliveryId = uuidv7();
    const { event: kind, ...fields } = event;
    const idempotencyKey = webhookIdempotencyKey(kind, event.grantId ?? event.externalRef);
    const body = JSON.stringify({
      event: kind,
      deliveryId,
      idempotencyKey,
      ...fields,
    } satisfies WebhookEvent);
    const timestamp = String(Math.floor(Date.now() / 1000));
    let response: Response;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'jit-broker',
          [WEBHOOK_TIMESTAMP_HEADER]: timestamp,
          [WEBHOOK_SIGNATURE_HEADER]: signWebhookBody(this.options.secret, timestamp, body),
          [WEBHOOK_DELIVERY_HEADER]: deliveryId,
          [WEBHOOK_IDEMPOTENCY_HEADER]: idempotencyKey,
        },
        body,
        // A redirect would re-send the signed event somewhere the policy did not name: treat it as a failure.
        redirect: 'manual',
        // Covers connecting, the answer's headers and reading its body.
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw this.transportFailure(event.event, error);
    }
    const isJson = /^application\/([a-z0-9.+-]*\+)?json\b/i.test(response.headers.get('content-type') ?? '');
    const ok = response.status >= 200 && response.status <= 299;
    if (event.event !== 'mint' || !ok || !isJson) {
      // Unread, the body would hold the connection until the timeout fires.
      await response.body?.cancel().catch(() => {});
      return { status: response.status, body: '' };
    }
    try {
      return { status: response.status, body: await readLimited(response) };
    } catch (error) {
      throw this.transportFailure(event.event, error);
    }
  }

  private parseMintAnswer(body: string): { credential: Record<string, unknown>; externalRef?: string } {
    if (body.trim() === '') return { credential: {} };
    let answer: unknown;
    try {
      answer = JSON.parse(body);
    } catch (error) {
      throw this.failure('mint', 'answered with invalid JSON', error);
    }
    if (!isPlainObject(answer)) throw this.failure('mint', 'answered with JSON that is not an object');
    const { credential, externalRef } = answer;
    if (credential !== undefined && !isPlainObject(credential)) {
      throw this.failure('mint', 'answered with a credential that is not an object');
    }
    if (
      externalRef !== undefined &&
      (typeof externalRef !== 'string' || !RECEIVER_EXTERNAL_REF.test(externalRef))
    ) {
      throw this.failure('mint', 'answered with an externalRef that is not 1-200 printable ASCII characters');
    }
    return { credential: credential ?? {}, externalRef };
  }

  private failure(event: 'mint' | 'revoke', what: string, cause?: unknown): Error {
    return new Error(`Webhook "${this.options.connectorName}" ${what} to ${event}`, { cause });
  }

  private transportFailure(event: 'mint' | 'revoke', error: unknown): Error {
    // By name, not instanceof: the abort reason is a DOMException, which may come from another realm.
    if ((error as { name?: unknown } | null)?.name === 'TimeoutError') {
      return this.failure(event, `did not answer within ${this.timeoutMs} ms`, error);
    }
    if (error instanceof RangeError) return this.failure(event, error.message, error);
    return this.failure(event, 'could not be reached', error);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The answer's body as text, refusing more than MAX_RESPONSE_BYTES. */
async function readLimited(response: Response): Promise<string> {
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body) {
    total += chunk.byteLength;
    if (total > MAX_RESPONSE_BYTES)
      throw new RangeError(`answered with more than ${MAX_RESPONSE_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
