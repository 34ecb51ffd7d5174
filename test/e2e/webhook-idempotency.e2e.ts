// Issue 13 point 2, through the whole stack against a real HTTP receiver: every retry of one operation carries
// the same Idempotency-Key, and a mint that the receiver applied but answered too late is taken back by a
// compensating revoke before the requester gets the error (and retried by the worker if that revoke fails).
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rm } from 'node:fs/promises';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { verifyWebhookSignature, type WebhookEvent } from '../../libs/connectors/webhook.connector.js';
import { policyDirFromFixture } from '../support/policy-fixture.js';
import { clientAs, enrollAll, startStack, waitFor, type TestStack } from '../support/stack.js';

jest.setTimeout(60_000);

const SECRET = 'whsec_e2e_idempotency_7c2e91ab';
// The broker gives up on a delivery after this long; the slow receiver below answers after three times it.
const WEBHOOK_TIMEOUT_MS = 500;

interface Delivery {
  at: number;
  verified: boolean;
  idempotencyKey: string | undefined;
  event: WebhookEvent;
}

/** What the receiver does with one delivery: a status, after an optional delay. */
type Behaviour = (event: WebhookEvent) => { status: number; delayMs?: number; applyLate?: boolean };

const receiver = {
  held: new Set<string>(),
  deliveries: [] as Delivery[],
  behave: (() => ({ status: 204 })) as Behaviour,
};

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function deliveriesOf(grantId: string, kind: WebhookEvent['event']): Delivery[] {
  return receiver.deliveries.filter(({ event }) => event.event === kind && event.grantId === grantId);
}

async function approvedRequest(stack: TestStack, durationSeconds: number): Promise<string> {
  const created = await clientAs(stack, 'alice').post('/api/requests', {
    entitlementId: 'ticketing-admin',
    durationSeconds,
    justification: 'webhook idempotency e2e',
  });
  expect(created.status).toBe(201);
  expect((await clientAs(stack, 'bob').decide(created.body.id, 'approve')).body.state).toBe('APPROVED');
  return created.body.id as string;
}

async function grantsOf(stack: TestStack, requestId: string) {
  const { rows } = await stack.db.query(
    `SELECT id, state, revoke_reason, revoke_attempts FROM grants WHERE request_id = $1 ORDER BY id`,
    [requestId],
  );
  return rows as Array<{ id: string; state: string; revoke_reason: string | null; revoke_attempts: number }>;
}

/** The grant id reserved for the request's activation attempt, if any (mint_attempts). */
async function reservationsOf(stack: TestStack, requestId: string): Promise<string[]> {
  const { rows } = await stack.db.query(
    'SELECT grant_id FROM mint_attempts WHERE request_id = $1 AND undo_external_ref IS NULL',
    [requestId],
  );
  return rows.map((row: { grant_id: string }) => row.grant_id);
}

/** Undos of the request's failed mint attempts still to retry. */
async function pendingUndosOf(stack: TestStack, requestId: string) {
  const { rows } = await stack.db.query(
    `SELECT grant_id, undo_external_ref, undo_attempts, last_error FROM mint_attempts
      WHERE request_id = $1 AND undo_external_ref IS NOT NULL`,
    [requestId],
  );
  return rows as Array<{
    grant_id: string;
    undo_external_ref: string;
    undo_attempts: number;
    last_error: string;
  }>;
}

async function requestState(stack: TestStack, requestId: string): Promise<string> {
  const { rows } = await stack.db.query('SELECT state FROM elevation_requests WHERE id = $1', [requestId]);
  return rows[0].state as string;
}

/**
 * Revokes an ACTIVE request and waits for its grants: a live grant of the same subject, entitlement and scope
 * would hold the external state of the next test's grants (overlap key), which are then not taken back.
 */
async function endEarly(stack: TestStack, requestId: string): Promise<void> {
  const alice = clientAs(stack, 'alice');
  const stepUp = await alice.stepUp('revoke', requestId);
  const revoked = await alice.post(`/api/requests/${requestId}/revoke`, { reason: 'done', stepUp });
  expect([200, 202]).toContain(revoked.status);
  await waitFor(
    async () =>
      (await grantsOf(stack, requestId)).every((grant) => grant.state === 'REVOKED') ? true : undefined,
    15_000,
    `the grants of ${requestId} to be revoked`,
  );
}

function waitForGrant(stack: TestStack, requestId: string, state: string, timeoutMs: number) {
  return waitFor(
    async () => (await grantsOf(stack, requestId)).find((grant) => grant.state === state),
    timeoutMs,
    `a grant of ${requestId} to be ${state}`,
  );
}

describe('webhook idempotency keys and mint compensation', () => {
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
        const idempotencyKey = header(incoming.headers, 'idempotency-key');
        receiver.deliveries.push({ at: Date.now(), verified, idempotencyKey, event });
        if (!verified) return void response.writeHead(401).end();
        const { status, delayMs = 0, applyLate = false } = receiver.behave(event);
        // Applied on arrival (or, applyLate, when answered), keyed by grant id, whether or not the broker waits.
        const apply = () => receiver.held.add(event.grantId!);
        if (status < 300 && event.event === 'mint') {
          if (applyLate) setTimeout(apply, delayMs);
          else apply();
        }
        if (status < 300 && event.event === 'revoke') receiver.held.delete(event.grantId!);
        setTimeout(() => response.writeHead(status).end(), delayMs);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jit-hook`;
    policyDir = await policyDirFromFixture('webhook', { RECEIVER_URL: url });
    stack = await startStack({
      policyDir,
      env: {
        E2E_WEBHOOK_SECRET: SECRET,
        WEBHOOK_TIMEOUT_MS: String(WEBHOOK_TIMEOUT_MS),
        SWEEP_INTERVAL_SECONDS: '1',
        REVOKE_BACKOFF_MS: '50',
      },
    });
    await enrollAll(stack, ['alice', 'bob']);
  }, 60_000);

  beforeEach(() => {
    receiver.behave = () => ({ status: 204 });
  });

  afterAll(async () => {
    await stack?.close();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
    expect(receiver.deliveries.filter((delivery) => !delivery.verified)).toEqual([]);
  }, 60_000);

  it('a revoke answered 500 twice, then 204, reaches the receiver three times under one Idempotency-Key', async () => {
    const id = await approvedRequest(stack, 1);
    const revokesSeen = new Map<string, number>();
    receiver.behave = (event) => {
      if (event.event !== 'revoke') return { status: 201 };
      const seen = (revokesSeen.get(event.grantId!) ?? 0) + 1;
      revokesSeen.set(event.grantId!, seen);
      return { status: seen <= 2 ? 500 : 204 };
    };
    expect((await clientAs(stack, 'alice').decide(id, 'activate')).status).toBe(200);
    const [grant] = await grantsOf(stack, id);
    const [mint] = deliveriesOf(grant.id, 'mint');
    expect(mint.idempotencyKey).toBe(`mint:${grant.id}`);
    expect(mint.event.idempotencyKey).toBe(mint.idempotencyKey);

    const revoked = await waitForGrant(stack, id, 'REVOKED', 20_000);
    expect(revoked.revoke_attempts).toBe(2);
    const revokes = deliveriesOf(grant.id, 'revoke');
    expect(revokes).toHaveLength(3);
    expect(new Set(revokes.map((delivery) => delivery.idempotencyKey))).toEqual(
      new Set([`revoke:${grant.id}`]),
    );
    expect(revokes.every((delivery) => delivery.event.idempotencyKey === `revoke:${grant.id}`)).toBe(true);
    // deliveryId still names each attempt, for logs.
    expect(new Set(revokes.map((delivery) => delivery.event.deliveryId)).size).toBe(3);
    expect(receiver.held.has(grant.id)).toBe(false);
  });

  it('takes back a mint the receiver applied but answered after the timeout, before the requester hears of it', async () => {
    const id = await approvedRequest(stack, 600);
    let reservedDuringMint: Promise<string[]> | undefined;
    receiver.behave = (event) => {
      if (event.event !== 'mint') return { status: 204 };
      reservedDuringMint = reservationsOf(stack, id);
      return { status: 201, delayMs: 3 * WEBHOOK_TIMEOUT_MS };
    };
    const alice = clientAs(stack, 'alice');
    const stepUp = await alice.stepUp('activate', id);
    const sentAt = Date.now();
    const failed = await alice.post(`/api/requests/${id}/activate`, { stepUp });
    const answeredAt = Date.now();
    expect(failed.status).toBe(502);
    expect(failed.body.error.code).toBe('CONNECTOR_FAILED');

    const mints = receiver.deliveries.filter(
      ({ event, at }) => event.event === 'mint' && event.requestId === id && at >= sentAt,
    );
    expect(mints).toHaveLength(1);
    const grantId = mints[0].event.grantId!;
    const [compensation, ...more] = deliveriesOf(grantId, 'revoke');
    expect(more).toEqual([]);
    expect(compensation.at).toBeLessThanOrEqual(answeredAt);
    expect(compensation.idempotencyKey).toBe(`revoke:${grantId}`);
    expect(compensation.event).toMatchObject({ grantId, externalRef: grantId });
    expect(receiver.held.has(grantId)).toBe(false);
    expect(await requestState(stack, id)).toBe('APPROVED');
    expect(await grantsOf(stack, id)).toEqual([]);
    // The attempt's grant id was committed before its mint was sent, and ended with the compensation.
    expect(await reservedDuringMint).toEqual([grantId]);
    expect(await reservationsOf(stack, id)).toEqual([]);

    // Activating again is a new attempt with a new grant id: `mint:<id>` was followed by a revoke.
    receiver.behave = (event) => ({ status: event.event === 'mint' ? 201 : 204 });
    expect((await alice.decide(id, 'activate')).status).toBe(200);
    const [grant] = await grantsOf(stack, id);
    expect(grant.id).not.toBe(grantId);
    expect(receiver.held.has(grant.id)).toBe(true);
    expect(await requestState(stack, id)).toBe('ACTIVE');
    await endEarly(stack, id);
  });

  it('ends the reservation of an activation refused before its mint: nothing was sent, nothing to take back', async () => {
    const created = await clientAs(stack, 'alice').post('/api/requests', {
      entitlementId: 'ticketing-admin',
      durationSeconds: 600,
      justification: 'webhook idempotency e2e, scheduled start',
      notBefore: new Date(Date.now() + 3_600_000).toISOString(),
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect((await clientAs(stack, 'bob').decide(id, 'approve')).body.state).toBe('APPROVED');
    const refused = await clientAs(stack, 'alice').decide(id, 'activate');
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect(refused.status).toBeLessThan(500);
    expect(receiver.deliveries.filter(({ event }) => event.requestId === id)).toEqual([]);
    // A kept reservation would later be swept as a broker that stopped mid-mint, with a false alert.
    expect(await reservationsOf(stack, id)).toEqual([]);
    expect(await pendingUndosOf(stack, id)).toEqual([]);
    expect(await requestState(stack, id)).toBe('APPROVED');
  });

  it('sends a compensating revoke once more after the mint timeout, undoing a mint applied after it (404 first)', async () => {
    const id = await approvedRequest(stack, 600);
    receiver.behave = (event) =>
      event.event === 'mint'
        ? { status: 201, delayMs: WEBHOOK_TIMEOUT_MS + 200, applyLate: true }
        : { status: receiver.held.has(event.grantId!) ? 204 : 404 };
    expect((await clientAs(stack, 'alice').decide(id, 'activate')).status).toBe(502);
    const [mint] = receiver.deliveries.filter(
      ({ event }) => event.event === 'mint' && event.requestId === id,
    );
    const grantId = mint.event.grantId!;
    // The compensating revoke came first and was answered 404; then the late mint was applied.
    await waitFor(async () => (receiver.held.has(grantId) ? true : undefined), 5_000, 'the late mint');
    await waitFor(
      async () => (deliveriesOf(grantId, 'revoke').length === 2 ? true : undefined),
      10_000,
      'the re-sent compensating revoke',
    );
    expect(receiver.held.has(grantId)).toBe(false);
    expect(new Set(deliveriesOf(grantId, 'revoke').map((delivery) => delivery.idempotencyKey))).toEqual(
      new Set([`revoke:${grantId}`]),
    );
    await waitFor(
      async () => ((await pendingUndosOf(stack, id)).length === 0 ? true : undefined),
      10_000,
      'the undo to be forgotten',
    );
    expect(deliveriesOf(grantId, 'revoke')).toHaveLength(2);
    expect(await requestState(stack, id)).toBe('APPROVED');
  });

  it('keeps retrying a compensating revoke that fails, under the same key, until the receiver takes it', async () => {
    const id = await approvedRequest(stack, 600);
    let receiverDown = true;
    receiver.behave = (event) =>
      event.event === 'mint'
        ? { status: 201, delayMs: 3 * WEBHOOK_TIMEOUT_MS }
        : { status: receiverDown ? 503 : 204 };
    expect((await clientAs(stack, 'alice').decide(id, 'activate')).status).toBe(502);

    const [pending] = await pendingUndosOf(stack, id);
    const grantId = pending.grant_id;
    expect(pending.undo_external_ref).toBe(grantId);
    expect(pending.last_error).toContain('answered 503 to revoke');
    const { rows: alerts } = await stack.db.query(
      `SELECT data, request_id FROM audit_events WHERE action = 'grant.revoke_failed' AND subject_id = $1`,
      [grantId],
    );
    expect(alerts).toEqual([{ request_id: id, data: expect.objectContaining({ alert: true, attempts: 1 }) }]);
    expect(receiver.held.has(grantId)).toBe(true);
    expect(await requestState(stack, id)).toBe('APPROVED');
    expect(await grantsOf(stack, id)).toEqual([]);

    receiverDown = false;
    await waitFor(
      async () => ((await pendingUndosOf(stack, id)).length === 0 ? true : undefined),
      20_000,
      'the undo to go through',
    );
    expect(receiver.held.has(grantId)).toBe(false);
    const revokes = deliveriesOf(grantId, 'revoke');
    expect(revokes.length).toBeGreaterThanOrEqual(2);
    expect(new Set(revokes.map((delivery) => delivery.idempotencyKey))).toEqual(
      new Set([`revoke:${grantId}`]),
    );
    expect(await requestState(stack, id)).toBe('APPROVED');
  });

  it('retries an attempt the broker never concluded (it stopped mid-mint) with the same grant id and key', async () => {
    const id = await approvedRequest(stack, 600);
    // What a broker that stopped after sending the mint leaves: the reservation, committed before the send.
    const unfinished = uuidv7();
    await stack.db.query('INSERT INTO mint_attempts (grant_id, request_id) VALUES ($1, $2)', [
      unfinished,
      id,
    ]);
    receiver.behave = () => ({ status: 201 });
    expect((await clientAs(stack, 'alice').decide(id, 'activate')).status).toBe(200);
    const [grant] = await grantsOf(stack, id);
    expect(grant.id).toBe(unfinished);
    expect(deliveriesOf(unfinished, 'mint').map((delivery) => delivery.idempotencyKey)).toEqual([
      `mint:${unfinished}`,
    ]);
    expect(await reservationsOf(stack, id)).toEqual([]);
    await endEarly(stack, id);
  });

  /** The broker stopped after sending the mint: its reservation is left, and the receiver applied the mint. */
  async function crashedMidMint(requestId: string, reservedAgo: string): Promise<string> {
    const grantId = uuidv7();
    await stack.db.query(
      `INSERT INTO mint_attempts (grant_id, request_id, reserved_at) VALUES ($1, $2, now() - $3::interval)`,
      [grantId, requestId, reservedAgo],
    );
    receiver.held.add(grantId);
    return grantId;
  }

  /** Waits until the sweep has sent the abandoned attempt's undo and forgotten it, then checks what was sent. */
  async function expectOneCompensatingRevoke(
    requestId: string | null,
    grantId: string,
    requestState: string | null,
  ) {
    await waitFor(
      async () =>
        (await stack.db.query('SELECT 1 FROM mint_attempts WHERE grant_id = $1', [grantId])).rowCount === 0 &&
        deliveriesOf(grantId, 'revoke').length > 0
          ? true
          : undefined,
      20_000,
      `the abandoned mint of ${grantId} to be taken back`,
    );
    // One operation (one key): sent, then once more after the mint timeout (a late mint may follow it).
    const revokes = deliveriesOf(grantId, 'revoke');
    expect(revokes.map((delivery) => delivery.idempotencyKey)).toEqual([
      `revoke:${grantId}`,
      `revoke:${grantId}`,
    ]);
    expect(revokes[1].at - revokes[0].at).toBeGreaterThanOrEqual(WEBHOOK_TIMEOUT_MS);
    expect(revokes[0].event).toMatchObject({ grantId, externalRef: grantId });
    expect(receiver.held.has(grantId)).toBe(false);
    const { rows } = await stack.db.query(
      `SELECT request_id, data FROM audit_events WHERE action = 'grant.mint-abandoned' AND subject_id = $1`,
      [grantId],
    );
    expect(rows).toEqual([
      {
        request_id: requestId,
        data: expect.objectContaining({
          alert: true,
          connector: expect.any(String),
          requestState,
          undo: 'revoke',
        }),
      },
    ]);
  }

  it('takes back a mint whose broker stopped mid-flight once its request is cancelled', async () => {
    const id = await approvedRequest(stack, 600);
    const grantId = await crashedMidMint(id, '0 seconds');
    const cancelled = await clientAs(stack, 'alice').post(`/api/requests/${id}/cancel`, {});
    expect(cancelled.status).toBe(200);
    await expectOneCompensatingRevoke(id, grantId, 'CANCELLED');
    expect(await grantsOf(stack, id)).toEqual([]);
  });

  it('takes back a mint whose broker stopped mid-flight once the mint timeout is long past', async () => {
    const id = await approvedRequest(stack, 600);
    const grantId = await crashedMidMint(id, '10 minutes');
    await expectOneCompensatingRevoke(id, grantId, 'APPROVED');
    expect(await requestState(stack, id)).toBe('APPROVED');
    // The request can still be activated, under a new grant id: `mint:<grantId>` was followed by a revoke.
    receiver.behave = (event) => ({ status: event.event === 'mint' ? 201 : 204 });
    expect((await clientAs(stack, 'alice').decide(id, 'activate')).status).toBe(200);
    const [grant] = await grantsOf(stack, id);
    expect(grant.id).not.toBe(grantId);
    await endEarly(stack, id);
  });

  it('leaves alone a reservation a live activation holds (row-locked across its mint)', async () => {
    const alice = clientAs(stack, 'alice');
    const held = await approvedRequest(stack, 600);
    const heldGrantId = await crashedMidMint(held, '10 minutes');
    const holder = await stack.db.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM mint_attempts WHERE grant_id = $1 FOR UPDATE', [heldGrantId]);
      expect((await alice.post(`/api/requests/${held}/cancel`, {})).status).toBe(200);
      // A second abandoned attempt, not held: once the sweep has taken it back, a sweep ran past the first.
      const other = await approvedRequest(stack, 600);
      const otherGrantId = await crashedMidMint(other, '0 seconds');
      expect((await alice.post(`/api/requests/${other}/cancel`, {})).status).toBe(200);
      await expectOneCompensatingRevoke(other, otherGrantId, 'CANCELLED');
      expect(deliveriesOf(heldGrantId, 'revoke')).toEqual([]);
      expect(receiver.held.has(heldGrantId)).toBe(true);
      await holder.query('ROLLBACK');
    } finally {
      holder.release();
    }
    // Once the holder is gone (as a live activation's transaction ends), the attempt is taken back too.
    await expectOneCompensatingRevoke(held, heldGrantId, 'CANCELLED');
  });

  it('reserves the grant id of a break-glass mint before sending it, and ends the reservation on commit', async () => {
    const alice = clientAs(stack, 'alice');
    const params = {
      entitlementId: 'ticketing-breakglass',
      durationSeconds: 600,
      justification: 'Incident, nobody can approve (webhook idempotency e2e)',
    };
    let reservedDuringMint: Promise<Array<{ grant_id: string; connector: string }>> | undefined;
    receiver.behave = (event) => {
      if (event.event === 'mint') {
        reservedDuringMint = stack.db
          .query(
            `SELECT grant_id, connector FROM mint_attempts
              WHERE request_id IS NULL AND undo_external_ref IS NULL AND grant_id = $1`,
            [event.grantId],
          )
          .then(({ rows }) => rows as Array<{ grant_id: string; connector: string }>);
      }
      return { status: 201 };
    };
    const stepUp = await alice.stepUp('break-glass', params.entitlementId, params);
    const created = await alice.post('/api/requests', { ...params, stepUp });
    expect(created.status).toBe(201);
    const id = created.body.request.id as string;
    const [grant] = await grantsOf(stack, id);
    expect(await reservedDuringMint).toEqual([{ grant_id: grant.id, connector: 'ticketing' }]);
    const { rowCount } = await stack.db.query('SELECT 1 FROM mint_attempts WHERE grant_id = $1', [grant.id]);
    expect(rowCount).toBe(0);
    await endEarly(stack, id);
  });

  it('takes back a break-glass mint whose broker stopped mid-flight (its request never committed)', async () => {
    const { rows } = await stack.db.query('SELECT policy_hash FROM elevation_requests LIMIT 1');
    const grantId = uuidv7();
    // What a break-glass reservation is: no request yet, and what its undo needs.
    await stack.db.query(
      `INSERT INTO mint_attempts (grant_id, request_id, connector, policy_hash, reserved_at)
       VALUES ($1, NULL, 'ticketing', $2, now() - interval '10 minutes')`,
      [grantId, rows[0].policy_hash],
    );
    receiver.held.add(grantId);
    await expectOneCompensatingRevoke(null, grantId, null);
  });

  it('lets the request be activated again while the undo of its failed attempt is pending', async () => {
    const id = await approvedRequest(stack, 600);
    let revokesFail = true;
    let slowMint = true;
    receiver.behave = (event) =>
      event.event === 'mint'
        ? { status: 201, delayMs: slowMint ? 3 * WEBHOOK_TIMEOUT_MS : 0 }
        : { status: revokesFail ? 503 : 204 };
    const alice = clientAs(stack, 'alice');
    expect((await alice.decide(id, 'activate')).status).toBe(502);
    const [failed] = await pendingUndosOf(stack, id);
    slowMint = false;
    expect((await alice.decide(id, 'activate')).status).toBe(200);
    const [live] = await grantsOf(stack, id);
    // Never the failed attempt's grant id again: a revoke for it was sent and is still being retried.
    expect(live.id).not.toBe(failed.grant_id);
    expect(live.state).toBe('ACTIVE');

    revokesFail = false;
    await waitFor(
      async () => ((await pendingUndosOf(stack, id)).length === 0 ? true : undefined),
      20_000,
      'the undo to be settled',
    );
    // The new grant holds the same external state (overlap key), so the undo does not take it away.
    expect(await requestState(stack, id)).toBe('ACTIVE');
    expect((await grantsOf(stack, id))[0].state).toBe('ACTIVE');
    await endEarly(stack, id);
  });
});
