// The webhook connector through the whole stack (broker, worker, PostgreSQL, Redis) against a real HTTP
// receiver that checks every HMAC: signed mint and revoke, a revocation that keeps failing (retries, then
// REVOKE_FAILED with an alert, then revoked by the sweeper once the receiver recovers), and overlap keys
// (shared external state stays until the last grant holding it ends).
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import canonicalize from 'canonicalize';
import { verifyWebhookSignature, type WebhookEvent } from '../../libs/connectors/webhook.connector.js';
import { REVOKE_ATTEMPTS } from '../../libs/jobs/jobs.js';
import { policyDirFromFixture } from '../support/policy-fixture.js';
import {
  clientAs,
  enrollAll,
  startStack,
  waitFor,
  type StepUpBody,
  type TestStack,
} from '../support/stack.js';

jest.setTimeout(60_000);

const SECRET = 'whsec_e2e_revocation_5d1f0c2b9a';
const SWEEP_INTERVAL_SECONDS = 1;
// 8 attempts from 50 ms, doubling: at most 50 × (2^7 - 1) ≈ 6.4 s of backoff before REVOKE_FAILED.
const REVOKE_BACKOFF_MS = 50;
const ENTITLEMENT = 'ticketing-admin';
const SCOPE = { role: 'admin', projects: ['OPS', 'SEC'] };

interface Delivery {
  verified: boolean;
  event: WebhookEvent;
  status: number;
}

/** The external system: who holds what (keyed by the externalRef it hands out), and every delivery seen. */
const receiver = {
  held: new Set<string>(),
  deliveries: [] as Delivery[],
  failRevokes: false,
};

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function request(stack: TestStack, durationSeconds: number): Promise<string> {
  const created = await clientAs(stack, 'alice').post('/api/requests', {
    entitlementId: ENTITLEMENT,
    durationSeconds,
    justification: 'webhook revocation e2e',
  });
  expect(created.status).toBe(201);
  expect((await clientAs(stack, 'bob').decide(created.body.id, 'approve')).body.state).toBe('APPROVED');
  return created.body.id as string;
}

async function activate(stack: TestStack, requestId: string) {
  const activated = await clientAs(stack, 'alice').decide(requestId, 'activate');
  expect(activated.status).toBe(200);
  return activated.body as { request: { notAfter: string }; credential: Record<string, unknown> };
}

interface GrantRow {
  id: string;
  state: string;
  external_ref: string;
  overlap_key: string | null;
  revoke_attempts: number;
  not_after: Date;
  revoked_at: Date | null;
}

async function grantOf(stack: TestStack, requestId: string): Promise<GrantRow> {
  const { rows } = await stack.db.query(
    `SELECT id, state, external_ref, overlap_key, revoke_attempts, not_after, revoked_at
       FROM grants WHERE request_id = $1`,
    [requestId],
  );
  return rows[0] as GrantRow;
}

async function waitForState(stack: TestStack, requestId: string, state: string, timeoutMs: number) {
  return waitFor(
    async () => {
      const grant = await grantOf(stack, requestId);
      return grant?.state === state ? grant : undefined;
    },
    timeoutMs,
    `the grant of ${requestId} to be ${state}`,
  );
}

async function auditEvents(stack: TestStack, action: string, grantId: string) {
  const { rows } = await stack.db.query(
    `SELECT actor_id, data FROM audit_events WHERE action = $1 AND subject_id = $2 ORDER BY seq`,
    [action, grantId],
  );
  return rows as Array<{ actor_id: string; data: Record<string, unknown> }>;
}

function revokesOf(externalRef: string): Delivery[] {
  return receiver.deliveries.filter(
    ({ event }) => event.event === 'revoke' && event.externalRef === externalRef,
  );
}

describe('webhook grants: signed deliveries, failing revocations, overlap keys', () => {
  let server: Server;
  let policyDir: string;
  let stack: TestStack;

  beforeAll(async () => {
    server = createServer((incoming, response) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('end', () => {
        const body = Buffer.concat(chunks);
        const verified = verifyWebhookSignature(
          SECRET,
          header(incoming.headers, 'x-jit-timestamp'),
          body,
          header(incoming.headers, 'x-jit-signature'),
        );
        const event = JSON.parse(body.toString('utf8')) as WebhookEvent;
        const answer = (status: number, json?: unknown) => {
          receiver.deliveries.push({ verified, event, status });
          if (json === undefined) response.writeHead(status).end();
          else response.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(json));
        };
        if (!verified) return answer(401);
        if (event.event === 'mint') {
          // Group membership: one per person and entitlement, however many grants ask for it.
          const membership = `${event.subject}|${event.entitlementId}`;
          receiver.held.add(membership);
          return answer(201, { credential: { group: 'ticketing-admins' }, externalRef: membership });
        }
        if (receiver.failRevokes) return answer(500);
        receiver.held.delete(event.externalRef);
        return answer(204);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jit-hook`;
    policyDir = await policyDirFromFixture('webhook', { RECEIVER_URL: url });
    stack = await startStack({
      policyDir,
      env: {
        E2E_WEBHOOK_SECRET: SECRET,
        SWEEP_INTERVAL_SECONDS: String(SWEEP_INTERVAL_SECONDS),
        REVOKE_BACKOFF_MS: String(REVOKE_BACKOFF_MS),
      },
    });
    await enrollAll(stack, ['alice', 'bob']);
  }, 60_000);

  beforeEach(() => {
    receiver.failRevokes = false;
  });

  afterAll(async () => {
    await stack?.close();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
    // Every delivery of the whole suite carried a valid HMAC over its exact body.
    expect(receiver.deliveries.length).toBeGreaterThan(0);
    expect(receiver.deliveries.filter((delivery) => !delivery.verified)).toEqual([]);
  }, 60_000);

  it('mints and revokes with signed deliveries that name the grant', async () => {
    const id = await request(stack, 2);
    const { credential, request: active } = await activate(stack, id);
    expect(credential).toEqual({ type: 'webhook', notAfter: active.notAfter, group: 'ticketing-admins' });
    const grant = await grantOf(stack, id);
    expect(grant.external_ref).toBe(`alice|${ENTITLEMENT}`);
    const mint = receiver.deliveries.find(
      ({ event }) => event.event === 'mint' && event.grantId === grant.id,
    );
    expect(mint).toMatchObject({
      verified: true,
      event: { requestId: id, subject: 'alice', entitlementId: ENTITLEMENT, scope: SCOPE },
    });
    expect(receiver.held.has(grant.external_ref)).toBe(true);

    const revoked = await waitForState(stack, id, 'REVOKED', 15_000);
    expect(revokesOf(grant.external_ref)).toEqual([expect.objectContaining({ verified: true, status: 204 })]);
    expect(receiver.held.has(grant.external_ref)).toBe(false);
    const [event] = await auditEvents(stack, 'grant.revoked', grant.id);
    expect(event.data).toMatchObject({ reason: 'expired', externalRef: grant.external_ref });
    expect(event.data.externalRevokeSkipped).toBeUndefined();
    expect(revoked.revoked_at!.getTime()).toBeGreaterThanOrEqual(revoked.not_after.getTime());
  });

  it('retries a failing revoke, marks it REVOKE_FAILED with an alert, and revokes once the receiver recovers', async () => {
    const id = await request(stack, 1);
    await activate(stack, id);
    const { id: grantId, external_ref: externalRef } = await grantOf(stack, id);
    const revokesBefore = revokesOf(externalRef).length;
    receiver.failRevokes = true;

    const failed = await waitForState(stack, id, 'REVOKE_FAILED', 30_000);
    expect(failed.revoke_attempts).toBeGreaterThanOrEqual(REVOKE_ATTEMPTS);
    const answers = revokesOf(externalRef).slice(revokesBefore);
    expect(answers.length).toBeGreaterThanOrEqual(REVOKE_ATTEMPTS);
    expect(answers.every((delivery) => delivery.verified && delivery.status === 500)).toBe(true);
    const [alert, ...more] = await auditEvents(stack, 'grant.revoke_failed', grantId);
    expect(more).toEqual([]);
    expect(alert.actor_id).toBe('system');
    expect(alert.data).toMatchObject({ alert: true, attempts: REVOKE_ATTEMPTS });
    expect(String(alert.data.error)).toContain('answered 500 to revoke');
    expect(receiver.held.has(externalRef)).toBe(true);

    receiver.failRevokes = false;
    const revoked = await waitForState(stack, id, 'REVOKED', 20_000);
    expect(receiver.held.has(externalRef)).toBe(false);
    const [event] = await auditEvents(stack, 'grant.revoked', grantId);
    expect(event.data.attempts).toBe(revoked.revoke_attempts + 1);
    const { rows } = await stack.db.query('SELECT state FROM elevation_requests WHERE id = $1', [id]);
    expect(rows[0].state).toBe('ENDED');
  });

  it('keeps shared external state until the later of two grants holding it ends', async () => {
    // Two requests of one person for one entitlement: the same membership at the receiver.
    const first = await request(stack, 2);
    const second = await request(stack, 5);
    await activate(stack, first);
    await activate(stack, second);
    const [earlier, later] = [await grantOf(stack, first), await grantOf(stack, second)];
    const scopeDigest = createHash('sha256').update(canonicalize(SCOPE)!).digest('base64url');
    expect(earlier.overlap_key).toBe(`ticketing|alice|${ENTITLEMENT}|${scopeDigest}`);
    expect(later.overlap_key).toBe(earlier.overlap_key);
    expect(later.external_ref).toBe(earlier.external_ref);
    const membership = earlier.external_ref;
    const revokesBefore = revokesOf(membership).length;

    await waitForState(stack, first, 'REVOKED', 15_000);
    const [skipped] = await auditEvents(stack, 'grant.revoked', earlier.id);
    expect(skipped.data).toMatchObject({ externalRevokeSkipped: true, heldBy: later.id });
    expect(revokesOf(membership).length).toBe(revokesBefore);
    expect(receiver.held.has(membership)).toBe(true);
    expect((await grantOf(stack, second)).state).toBe('ACTIVE');

    await waitForState(stack, second, 'REVOKED', 15_000);
    expect(revokesOf(membership).slice(revokesBefore)).toEqual([
      expect.objectContaining({ verified: true, status: 204 }),
    ]);
    expect(receiver.held.has(membership)).toBe(false);
    const [last] = await auditEvents(stack, 'grant.revoked', later.id);
    expect(last.data.externalRevokeSkipped).toBeUndefined();
  });

  it('takes the state back when the last two holders are revoked at the same moment', async () => {
    const ids = [await request(stack, 600), await request(stack, 600)];
    for (const id of ids) await activate(stack, id);
    const membership = (await grantOf(stack, ids[0])).external_ref;
    expect(receiver.held.has(membership)).toBe(true);
    // Two people (the requester and the approver), so that the race is between the revocations and not
    // between two assertions of one passkey, whose counters could be checked out of order.
    const revokers = [clientAs(stack, 'alice'), clientAs(stack, 'bob')];
    const confirmations: StepUpBody[] = [];
    for (const [index, id] of ids.entries()) confirmations.push(await revokers[index].stepUp('revoke', id));
    const revokes = await Promise.all(
      ids.map((id, index) =>
        revokers[index].post(`/api/requests/${id}/revoke`, {
          reason: 'done early',
          stepUp: confirmations[index],
        }),
      ),
    );
    // 202 until the connector confirms; 200 if the worker confirmed before the answer was built.
    for (const response of revokes) expect([200, 202]).toContain(response.status);
    for (const id of ids) await waitForState(stack, id, 'REVOKED', 15_000);
    expect(receiver.held.has(membership)).toBe(false);
  });
});
