import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import canonicalize from 'canonicalize';
import type { GrantSpec } from '../../libs/connectors/connector.js';
import {
  signWebhookBody,
  verifyWebhookSignature,
  WebhookConnector,
  type WebhookEvent,
} from '../../libs/connectors/webhook.connector.js';

// A real HTTP receiver on a free local port, verifying every delivery with the helper receivers are given.
const SECRET = 'whsec_e2e_3f9c1d7a5b2e4f60';
const TOLERANCE_SECONDS = 300;

interface Delivery {
  headers: IncomingHttpHeaders;
  body: Buffer;
  verified: boolean;
  event: WebhookEvent | undefined;
}

interface Answer {
  status: number;
  json?: unknown;
  text?: string;
  headers?: Record<string, string>;
  /** Never answer: the connector's timeout has to end the exchange. */
  hang?: boolean;
}

let server: Server;
let receiverUrl: string;
let deliveries: Delivery[] = [];
let respond: (event: WebhookEvent) => Answer;
const hanging: ServerResponse[] = [];

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function connector(options: { secret?: string; timeoutMs?: number; url?: string } = {}): WebhookConnector {
  return new WebhookConnector({
    url: options.url ?? receiverUrl,
    secret: options.secret ?? SECRET,
    connectorName: 'e2e-hook',
    timeoutMs: options.timeoutMs,
  });
}

function grantSpec(): GrantSpec {
  return {
    grantId: randomUUID(),
    requestId: randomUUID(),
    subject: 'carol',
    entitlementId: 'ticketing-admin',
    scope: { role: 'admin', project: 'OPS' },
    notAfter: new Date(Math.floor(Date.now() / 1000) * 1000 + 900_000),
  };
}

describe('WebhookConnector against a real HTTP receiver', () => {
  beforeAll(async () => {
    server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks);
        const verified = verifyWebhookSignature(
          SECRET,
          header(request.headers, 'x-jit-timestamp'),
          body,
          header(request.headers, 'x-jit-signature'),
          TOLERANCE_SECONDS,
        );
        let event: WebhookEvent | undefined;
        try {
          event = JSON.parse(body.toString('utf8')) as WebhookEvent;
        } catch {
          event = undefined;
        }
        deliveries.push({ headers: request.headers, body, verified, event });
        if (!verified || !event) {
          response.writeHead(401).end();
          return;
        }
        const answer = respond(event);
        if (answer.hang) {
          hanging.push(response);
          return;
        }
        if (answer.json !== undefined) {
          response.writeHead(answer.status, { 'Content-Type': 'application/json', ...answer.headers });
          response.end(JSON.stringify(answer.json));
        } else {
          response.writeHead(answer.status, answer.headers);
          response.end(answer.text);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jit-hook`;
  }, 30_000);

  beforeEach(() => {
    deliveries = [];
    respond = () => ({ status: 204 });
  });

  afterAll(async () => {
    for (const response of hanging) response.destroy();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }, 30_000);

  it('delivers mint and revoke signed, with the grant, and shows the receiver credential once', async () => {
    respond = (event) =>
      event.event === 'mint'
        ? {
            status: 201,
            json: { credential: { apiKey: 'tk_live_123', endpoint: 'https://tickets.example' } },
          }
        : { status: 204 };
    const grant = grantSpec();
    const minted = await connector().mint(grant);

    expect(minted.credential).toEqual({
      apiKey: 'tk_live_123',
      endpoint: 'https://tickets.example',
      type: 'webhook',
      notAfter: grant.notAfter.toISOString(),
    });
    expect(minted.externalRef).toBe(grant.grantId);
    expect(minted.notAfter).toEqual(grant.notAfter);
    expect(minted.fingerprint).toBe(
      createHash('sha256')
        .update(canonicalize(minted.credential) ?? '')
        .digest('base64url'),
    );

    await connector().revoke(minted.externalRef);

    expect(deliveries.map((delivery) => delivery.verified)).toEqual([true, true]);
    const [mint, revoke] = deliveries;
    expect(mint.event).toEqual({
      event: 'mint',
      deliveryId: header(mint.headers, 'x-jit-delivery'),
      idempotencyKey: `mint:${grant.grantId}`,
      grantId: grant.grantId,
      requestId: grant.requestId,
      subject: 'carol',
      entitlementId: 'ticketing-admin',
      scope: { role: 'admin', project: 'OPS' },
      notAfter: grant.notAfter.toISOString(),
      externalRef: grant.grantId,
    });
    expect(revoke.event).toMatchObject({ event: 'revoke', externalRef: grant.grantId });
    expect(revoke.event?.deliveryId).toBe(header(revoke.headers, 'x-jit-delivery'));
    expect(revoke.event?.deliveryId).not.toBe(mint.event?.deliveryId);
    for (const delivery of deliveries) {
      expect(header(delivery.headers, 'content-type')).toBe('application/json');
      expect(header(delivery.headers, 'x-jit-timestamp')).toMatch(/^[0-9]{10}$/);
      expect(header(delivery.headers, 'x-jit-signature')).toMatch(/^sha256=[0-9a-f]{64}$/);
      // The HMAC key authenticates the broker; it is never sent, in the body or in any header.
      expect(delivery.body.toString('utf8')).not.toContain(SECRET);
      expect(JSON.stringify(delivery.headers)).not.toContain(SECRET);
    }
  });

  it("keeps the receiver's own externalRef and sends it back on revoke", async () => {
    respond = (event) =>
      event.event === 'mint' ? { status: 200, json: { externalRef: 'acct-42/grant-7' } } : { status: 200 };
    const grant = grantSpec();
    const minted = await connector().mint(grant);
    expect(minted.externalRef).toBe('acct-42/grant-7');
    // No credential from the receiver: the requester is shown only the type and the window.
    expect(minted.credential).toEqual({ type: 'webhook', notAfter: grant.notAfter.toISOString() });

    await connector().revoke(minted.externalRef);
    expect(deliveries[1].event).toMatchObject({ event: 'revoke', externalRef: 'acct-42/grant-7' });
  });

  it('gives receivers a helper that refuses a tampered body, a wrong secret or a replay', async () => {
    await connector().revoke('ref-1');
    const [delivery] = deliveries;
    const timestamp = header(delivery.headers, 'x-jit-timestamp');
    const signature = header(delivery.headers, 'x-jit-signature');
    expect(verifyWebhookSignature(SECRET, timestamp, delivery.body, signature, TOLERANCE_SECONDS)).toBe(true);

    const tampered = Buffer.from(delivery.body.toString('utf8').replace('ref-1', 'ref-2'));
    expect(verifyWebhookSignature(SECRET, timestamp, tampered, signature, TOLERANCE_SECONDS)).toBe(false);
    expect(
      verifyWebhookSignature(`${SECRET}-other`, timestamp, delivery.body, signature, TOLERANCE_SECONDS),
    ).toBe(false);
    const later = new Date((Number(timestamp) + TOLERANCE_SECONDS + 1) * 1000);
    expect(
      verifyWebhookSignature(SECRET, timestamp, delivery.body, signature, TOLERANCE_SECONDS, later),
    ).toBe(false);

    // Sent over the wire, the tampered body is refused by the receiver.
    const replay = await fetch(receiverUrl, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-JIT-Timestamp': String(timestamp),
        'X-JIT-Signature': String(signature),
      },
      body: tampered,
    });
    expect(replay.status).toBe(401);
    // While the same body signed with the right secret is accepted.
    const resigned = await fetch(receiverUrl, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-JIT-Timestamp': String(timestamp),
        'X-JIT-Signature': signWebhookBody(SECRET, String(timestamp), tampered),
      },
      body: tampered,
    });
    expect(resigned.status).toBe(204);
  });

  it('fails mint and revoke when the receiver refuses the signature (wrong secret)', async () => {
    const wrong = connector({ secret: 'whsec_not_the_receivers_secret' });
    await expect(wrong.mint(grantSpec())).rejects.toThrow('Webhook "e2e-hook" answered 401 to mint');
    await expect(wrong.revoke('ref-1')).rejects.toThrow('Webhook "e2e-hook" answered 401 to revoke');
    expect(deliveries.map((delivery) => delivery.verified)).toEqual([false, false]);
  });

  it('throws on a 5xx revoke so the revocation engine retries; a 404 on revoke is success', async () => {
    respond = () => ({ status: 500, text: 'database is down' });
    await expect(connector().revoke('ref-1')).rejects.toThrow('answered 500 to revoke');
    respond = () => ({ status: 503 });
    await expect(connector().revoke('ref-1')).rejects.toThrow('answered 503 to revoke');

    respond = () => ({ status: 404 });
    await expect(connector().revoke('ref-1')).resolves.toBeUndefined();
    // Revoking twice: the second call finds nothing and that is fine.
    await expect(connector().revoke('ref-1')).resolves.toBeUndefined();
    // A 404 on mint is not success: nothing was provisioned.
    await expect(connector().mint(grantSpec())).rejects.toThrow('answered 404 to mint');
  });

  it('throws when the receiver does not answer within the timeout', async () => {
    respond = () => ({ status: 200, hang: true });
    const slow = connector({ timeoutMs: 300 });
    await expect(slow.revoke('ref-1')).rejects.toThrow(
      'Webhook "e2e-hook" did not answer within 300 ms to revoke',
    );
    await expect(slow.mint(grantSpec())).rejects.toThrow('did not answer within 300 ms to mint');
    expect(deliveries).toHaveLength(2);
  });

  it('fails a mint whose answer cannot be used', async () => {
    const answers: Array<[Answer, string]> = [
      [{ status: 200, text: '{not json', headers: { 'Content-Type': 'application/json' } }, 'invalid JSON'],
      [{ status: 200, json: ['a'] }, 'not an object'],
      [{ status: 200, json: { credential: 'tk_live_123' } }, 'credential that is not an object'],
      [{ status: 200, json: { externalRef: 'has spaces' } }, 'externalRef'],
      [{ status: 200, json: { externalRef: 'x'.repeat(201) } }, 'externalRef'],
      [{ status: 200, json: { credential: { blob: 'x'.repeat(70_000) } } }, 'more than 65536 bytes'],
      [{ status: 302, headers: { Location: 'https://elsewhere.example/' } }, 'answered 302 to mint'],
    ];
    for (const [answer, message] of answers) {
      respond = () => answer;
      await expect(connector().mint(grantSpec())).rejects.toThrow(message);
    }
    // The redirect was not followed: every attempt reached our receiver exactly once.
    expect(deliveries).toHaveLength(answers.length);
  });

  it('ignores a non-JSON success body and credential fields that claim to be the broker', async () => {
    respond = () => ({ status: 200, text: 'OK', headers: { 'Content-Type': 'text/plain' } });
    const grant = grantSpec();
    expect((await connector().mint(grant)).credential).toEqual({
      type: 'webhook',
      notAfter: grant.notAfter.toISOString(),
    });

    respond = () => ({
      status: 200,
      json: { credential: { type: 'postgres', notAfter: 'never', token: 't' } },
    });
    expect((await connector().mint(grant)).credential).toEqual({
      type: 'webhook',
      notAfter: grant.notAfter.toISOString(),
      token: 't',
    });
  });

  it('throws when the receiver cannot be reached', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await expect(connector({ url: `http://127.0.0.1:${port}/` }).revoke('ref-1')).rejects.toThrow(
      'Webhook "e2e-hook" could not be reached to revoke',
    );
  });
});
