import { createHash } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import type { GrantSpec } from './connector.js';
import { signWebhookBody, verifyWebhookSignature, WebhookConnector } from './webhook.connector.js';

const SECRET = 'whsec_test_0123456789abcdef';
const BODY = '{"event":"mint"}';
const TIMESTAMP = '1700000000';
const AT_TIMESTAMP = new Date(1_700_000_000_000);
// printf '%s' '1700000000.{"event":"mint"}' | openssl dgst -sha256 -hmac 'whsec_test_0123456789abcdef'
const OPENSSL_SIGNATURE = 'sha256=bdfb134109a312d5800ae450b3b142ce04af2637e6c6f9c18eb45131c736201a';

describe('signWebhookBody', () => {
  it('is HMAC-SHA256 over "<timestamp>.<body>", as openssl computes it', () => {
    expect(signWebhookBody(SECRET, TIMESTAMP, BODY)).toBe(OPENSSL_SIGNATURE);
    expect(signWebhookBody(SECRET, TIMESTAMP, Buffer.from(BODY))).toBe(OPENSSL_SIGNATURE);
  });
});

describe('verifyWebhookSignature', () => {
  const verify = (overrides: {
    secret?: string;
    timestamp?: string | undefined;
    body?: string | Buffer;
    header?: string | undefined;
    tolerance?: number;
    now?: Date;
  }) =>
    verifyWebhookSignature(
      overrides.secret ?? SECRET,
      'timestamp' in overrides ? overrides.timestamp : TIMESTAMP,
      overrides.body ?? BODY,
      'header' in overrides ? overrides.header : OPENSSL_SIGNATURE,
      overrides.tolerance ?? 300,
      overrides.now ?? AT_TIMESTAMP,
    );

  it('accepts the signature of the raw body within the window, as text or bytes', () => {
    expect(verify({})).toBe(true);
    expect(verify({ body: Buffer.from(BODY) })).toBe(true);
    expect(verify({ now: new Date(AT_TIMESTAMP.getTime() + 300_000) })).toBe(true);
    expect(verify({ now: new Date(AT_TIMESTAMP.getTime() - 300_000) })).toBe(true);
  });

  it('refuses a tampered body, a wrong secret or a signature over another timestamp', () => {
    expect(verify({ body: '{"event":"revoke"}' })).toBe(false);
    expect(verify({ body: `${BODY} ` })).toBe(false);
    expect(verify({ secret: `${SECRET}x` })).toBe(false);
    expect(verify({ secret: '' })).toBe(false);
    expect(verify({ timestamp: '1700000001', now: AT_TIMESTAMP })).toBe(false);
  });

  it('refuses a timestamp outside the replay window, in the past or the future', () => {
    expect(verify({ now: new Date(AT_TIMESTAMP.getTime() + 301_000) })).toBe(false);
    expect(verify({ now: new Date(AT_TIMESTAMP.getTime() - 301_000) })).toBe(false);
    expect(verify({ now: new Date(AT_TIMESTAMP.getTime() + 11_000), tolerance: 10 })).toBe(false);
  });

  it('refuses missing or malformed headers without throwing', () => {
    expect(verify({ header: undefined })).toBe(false);
    expect(verify({ header: '' })).toBe(false);
    expect(verify({ header: OPENSSL_SIGNATURE.slice('sha256='.length) })).toBe(false);
    expect(verify({ header: `${OPENSSL_SIGNATURE}00` })).toBe(false);
    expect(verify({ header: OPENSSL_SIGNATURE.slice(0, -2) })).toBe(false);
    expect(verify({ header: `sha1=${'0'.repeat(40)}` })).toBe(false);
    expect(verify({ header: OPENSSL_SIGNATURE.toUpperCase() })).toBe(false);
    expect(verify({ timestamp: undefined })).toBe(false);
    expect(verify({ timestamp: '1700000000.5' })).toBe(false);
    expect(verify({ timestamp: '-1700000000' })).toBe(false);
  });
});

describe('WebhookConnector', () => {
  it('refuses a URL that is not http(s) and an empty secret', () => {
    expect(
      () => new WebhookConnector({ url: 'ftp://example.com/', secret: SECRET, connectorName: 'hook' }),
    ).toThrow('must be http:// or https://');
    expect(() => new WebhookConnector({ url: 'not a url', secret: SECRET, connectorName: 'hook' })).toThrow(
      'not a valid URL',
    );
    expect(
      () => new WebhookConnector({ url: 'https://example.com/', secret: '', connectorName: 'hook' }),
    ).toThrow('secret is empty');
  });

  it('keys shared external state by connector, subject, entitlement and canonical scope', () => {
    const hook = new WebhookConnector({ url: 'https://example.com/', secret: SECRET, connectorName: 'hook' });
    const grant: GrantSpec = {
      grantId: '0190a0b0-0000-7000-8000-000000000001',
      requestId: '0190a0b0-0000-7000-8000-000000000002',
      subject: 'carol',
      entitlementId: 'ticketing-admin',
      scope: { role: 'admin', projects: ['OPS', 'SEC'] },
      notAfter: new Date('2030-01-01T00:00:00Z'),
    };
    // sha256 of the RFC 8785 form, which orders keys: {"projects":["OPS","SEC"],"role":"admin"}
    const scopeDigest = createHash('sha256')
      .update('{"projects":["OPS","SEC"],"role":"admin"}')
      .digest('base64url');
    expect(hook.overlapKey(grant)).toBe(`hook|carol|ticketing-admin|${scopeDigest}`);
    // Another grant (id, request, end) with the same subject, entitlement and scope in another key order.
    const sameState = {
      ...grant,
      grantId: '0190a0b0-0000-7000-8000-000000000003',
      requestId: '0190a0b0-0000-7000-8000-000000000004',
      notAfter: new Date('2031-01-01T00:00:00Z'),
      scope: { projects: ['OPS', 'SEC'], role: 'admin' },
    };
    expect(hook.overlapKey(sameState)).toBe(hook.overlapKey(grant));
    expect(hook.overlapKey({ ...grant, subject: 'dave' })).not.toBe(hook.overlapKey(grant));
    expect(hook.overlapKey({ ...grant, entitlementId: 'ticketing-read' })).not.toBe(hook.overlapKey(grant));
    expect(hook.overlapKey({ ...grant, scope: { role: 'admin', projects: ['OPS'] } })).not.toBe(
      hook.overlapKey(grant),
    );
    const other = new WebhookConnector({
      url: 'https://example.com/',
      secret: SECRET,
      connectorName: 'hook2',
    });
    expect(other.overlapKey(grant)).not.toBe(hook.overlapKey(grant));
  });
});
