import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from '@jest/globals';
import type { GrantSpec } from './connector.js';
import {
  signWebhookBody,
  verifyWebhookSignature,
  WebhookConnector,
  webhookIdempotencyKey,
  type WebhookEvent,
} from './webhook.connector.js';

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

describe('WebhookConnector idempotency keys', () => {
  const grant: GrantSpec = {
    grantId: '0190a0b0-0000-7000-8000-00000000000a',
    requestId: '0190a0b0-0000-7000-8000-00000000000b',
    subject: 'carol',
    entitlementId: 'ticketing-admin',
    scope: { role: 'admin' },
    notAfter: new Date('2030-01-01T00:00:00Z'),
  };

  /** Runs `deliver` against a local receiver answering `status`; returns what it received. */
  async function received(status: number, deliver: (hook: WebhookConnector) => Promise<unknown>) {
    const seen: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        seen.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
        response.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    try {
      await deliver(new WebhookConnector({ url, secret: SECRET, connectorName: 'hook' })).catch(() => {});
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    return seen.map(({ headers, body }) => ({ headers, body, event: JSON.parse(body) as WebhookEvent }));
  }

  it('is `<event>:<grantId>`', () => {
    expect(webhookIdempotencyKey('mint', grant.grantId)).toBe(`mint:${grant.grantId}`);
    expect(webhookIdempotencyKey('revoke', grant.grantId)).toBe(`revoke:${grant.grantId}`);
  });

  it('sends the same key in the Idempotency-Key header and the signed body, new delivery ids each time', async () => {
    const deliveries = await received(500, async (hook) => {
      await hook.mint(grant).catch(() => {});
      await hook.revoke('acct-42', { grantId: grant.grantId }).catch(() => {});
      await hook.revoke('acct-42', { grantId: grant.grantId }).catch(() => {});
    });
    expect(deliveries.map(({ headers }) => headers['idempotency-key'])).toEqual([
      `mint:${grant.grantId}`,
      `revoke:${grant.grantId}`,
      `revoke:${grant.grantId}`,
    ]);
    for (const { headers, body, event } of deliveries) {
      expect(event.idempotencyKey).toBe(headers['idempotency-key']);
      expect(event.deliveryId).toBe(headers['x-jit-delivery']);
      const timestamp = headers['x-jit-timestamp'] as string;
      expect(headers['x-jit-signature']).toBe(signWebhookBody(SECRET, timestamp, body));
    }
    expect(new Set(deliveries.map(({ event }) => event.deliveryId)).size).toBe(3);
    expect(deliveries[1].event).toMatchObject({ grantId: grant.grantId, externalRef: 'acct-42' });
  });

  it('compensates a mint with a revoke of its grant id under the revoke key', async () => {
    const [revoke] = await received(404, (hook) => hook.compensateMint(grant));
    expect(revoke.headers['idempotency-key']).toBe(`revoke:${grant.grantId}`);
    expect(revoke.event).toMatchObject({
      event: 'revoke',
      grantId: grant.grantId,
      externalRef: grant.grantId,
    });
  });

  it('keys a revoke without a grant id by its externalRef', async () => {
    const [revoke] = await received(204, (hook) => hook.revoke('acct-42'));
    expect(revoke.headers['idempotency-key']).toBe('revoke:acct-42');
    expect(revoke.event.grantId).toBeNull();
  });
});
