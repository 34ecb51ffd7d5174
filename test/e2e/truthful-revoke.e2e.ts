// Issue 13 point 1: a revoke tells the truth. With the webhook receiver down (its port closed), an early
// revoke answers 202 and the request view shows its grant REVOKING with attempts and the next retry, then
// REVOKED with the moment the receiver confirmed once it is back; a receiver that stays down ends
// REVOKE_FAILED with the last error; an expiry with the receiver down ends the request but does not show
// the grant as revoked.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { REVOKE_ATTEMPTS } from '../../libs/jobs/jobs.js';
import { policyDirFromFixture } from '../support/policy-fixture.js';
import { clientAs, enrollAll, startStack, waitFor, type TestStack } from '../support/stack.js';

jest.setTimeout(90_000);

const SECRET = 'whsec_e2e_truthful_revoke_7c41e9';
// 8 attempts from 100 ms, doubling with jitter 0.5: 6.35 s to 12.7 s of backoff before REVOKE_FAILED.
const REVOKE_BACKOFF_MS = 100;
const ENTITLEMENT = 'ticketing-admin';

interface GrantView {
  state: string;
  revokeAttempts: number;
  nextRetryAt: string | null;
  revokedAt: string | null;
  lastError: string | null;
}

interface RequestView {
  id: string;
  state: string;
  notAfter: string | null;
  endReason: string | null;
  grant: GrantView | null;
}

/** The external system: a membership per externalRef, every revoke it received, and a port it can close. */
const receiver = {
  server: null as Server | null,
  port: 0,
  held: new Set<string>(),
  revokes: [] as string[],
};

function handle(server: Server): Server {
  return server.on('request', (incoming, response) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      if (event.event === 'mint') {
        const membership = `${String(event.subject)}|${String(event.requestId)}`;
        receiver.held.add(membership);
        response.writeHead(201, { 'Content-Type': 'application/json' });
        response.end(JSON.stringify({ credential: { group: 'ticketing-admins' }, externalRef: membership }));
        return;
      }
      receiver.revokes.push(String(event.externalRef));
      receiver.held.delete(String(event.externalRef));
      response.writeHead(204).end();
    });
  });
}

/** Listens on the receiver's port (a new one the first time). */
async function receiverUp(): Promise<void> {
  const server = handle(createServer());
  await new Promise<void>((resolve) => server.listen(receiver.port, '127.0.0.1', resolve));
  receiver.port = (server.address() as AddressInfo).port;
  receiver.server = server;
}

/** Closes the port: every delivery is refused (ECONNREFUSED), as when the receiver is down. */
async function receiverDown(): Promise<void> {
  const server = receiver.server;
  if (!server) return;
  receiver.server = null;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('truthful revoke: 202 and REVOKING until the connector confirms', () => {
  let policyDir: string;
  let stack: TestStack;

  async function activeRequest(durationSeconds: number): Promise<RequestView> {
    const alice = clientAs(stack, 'alice');
    const created = await alice.post('/api/requests', {
      entitlementId: ENTITLEMENT,
      durationSeconds,
      justification: 'truthful revoke e2e',
    });
    expect(created.status).toBe(201);
    expect((created.body as RequestView).grant).toBeNull();
    expect((await clientAs(stack, 'bob').decide(created.body.id, 'approve')).status).toBe(200);
    const activated = await alice.decide(created.body.id, 'activate');
    expect(activated.status).toBe(200);
    const request = activated.body.request as RequestView;
    expect(request.grant).toEqual({
      state: 'ACTIVE',
      revokeAttempts: 0,
      nextRetryAt: null,
      revokedAt: null,
      lastError: null,
    });
    return request;
  }

  async function view(requestId: string): Promise<RequestView> {
    const answer = await clientAs(stack, 'alice').get(`/api/requests/${requestId}`);
    expect(answer.status).toBe(200);
    return answer.body as RequestView;
  }

  /** Polls the request view until `accept` says yes. */
  function viewWhen(
    requestId: string,
    accept: (grant: GrantView) => boolean,
    timeoutMs: number,
    what: string,
  ) {
    return waitFor(
      async () => {
        const request = await view(requestId);
        return request.grant && accept(request.grant) ? request : undefined;
      },
      timeoutMs,
      `${what} (request ${requestId})`,
    );
  }

  async function revokeEarly(requestId: string) {
    const alice = clientAs(stack, 'alice');
    const stepUp = await alice.stepUp('revoke', requestId);
    return alice.post(`/api/requests/${requestId}/revoke`, { reason: 'done early', stepUp });
  }

  beforeAll(async () => {
    await receiverUp();
    const url = `http://127.0.0.1:${receiver.port}/jit-hook`;
    policyDir = await policyDirFromFixture('webhook', { RECEIVER_URL: url });
    stack = await startStack({
      policyDir,
      env: {
        E2E_WEBHOOK_SECRET: SECRET,
        SWEEP_INTERVAL_SECONDS: '1',
        REVOKE_BACKOFF_MS: String(REVOKE_BACKOFF_MS),
      },
    });
    await enrollAll(stack, ['alice', 'bob']);
  }, 90_000);

  beforeEach(async () => {
    if (!receiver.server) await receiverUp();
  });

  afterAll(async () => {
    await stack?.close();
    await receiverDown();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  }, 60_000);

  it('answers an early revoke with the receiver down 202, shows REVOKING, then REVOKED once it is back', async () => {
    const active = await activeRequest(600);
    const membership = `alice|${active.id}`;
    expect(receiver.held.has(membership)).toBe(true);
    await receiverDown();

    const revokedAt = Date.now();
    const revoked = await revokeEarly(active.id);
    expect(revoked.status).toBe(202);
    const answered = revoked.body as RequestView;
    expect(answered.state).toBe('REVOKED');
    expect(answered.endReason).toBe('revoked');
    expect(answered.grant).toMatchObject({ state: 'REVOKING', revokedAt: null });

    const failing = await viewWhen(
      active.id,
      (grant) => grant.revokeAttempts >= 1,
      10_000,
      'a failed attempt',
    );
    const observedAt = Date.now();
    expect(failing.state).toBe('REVOKED');
    expect(failing.grant).toMatchObject({ state: 'REVOKING', revokedAt: null });
    expect(failing.grant!.lastError).toContain('revoke');
    // The worker's next try: recorded when the attempt failed, at most the longest backoff away.
    const nextRetryAt = Date.parse(failing.grant!.nextRetryAt!);
    expect(nextRetryAt).toBeGreaterThan(revokedAt);
    expect(nextRetryAt).toBeLessThan(observedAt + REVOKE_BACKOFF_MS * 2 ** REVOKE_ATTEMPTS);
    expect(receiver.held.has(membership)).toBe(true);

    const upAt = Date.now();
    await receiverUp();
    const confirmed = await viewWhen(active.id, (grant) => grant.state === 'REVOKED', 30_000, 'REVOKED');
    expect(confirmed.state).toBe('REVOKED');
    expect(confirmed.grant).toMatchObject({ nextRetryAt: null });
    expect(Date.parse(confirmed.grant!.revokedAt!)).toBeGreaterThanOrEqual(upAt - 1_000);
    expect(receiver.revokes).toContain(membership);
    expect(receiver.held.has(membership)).toBe(false);
  });

  it('with the receiver up, answers 202 unless the worker already confirmed, and is REVOKED within moments', async () => {
    const active = await activeRequest(600);
    const revoked = await revokeEarly(active.id);
    // The worker revokes after the commit: usually not yet confirmed when the answer is built.
    const { grant } = revoked.body as RequestView;
    expect({ status: revoked.status, grant: grant!.state }).toEqual(
      grant!.state === 'REVOKED' ? { status: 200, grant: 'REVOKED' } : { status: 202, grant: 'REVOKING' },
    );
    const confirmed = await viewWhen(active.id, (grant) => grant.state === 'REVOKED', 15_000, 'REVOKED');
    expect(confirmed.grant).toMatchObject({ revokeAttempts: 0, lastError: null, nextRetryAt: null });
    expect(confirmed.grant!.revokedAt).not.toBeNull();
  });

  it('ends REVOKE_FAILED with the last error while the receiver stays down, and REVOKED once it is back', async () => {
    const active = await activeRequest(600);
    await receiverDown();
    expect((await revokeEarly(active.id)).status).toBe(202);

    // Each view as polled, to check that no retry came before the nextRetryAt the grant showed.
    const seen: Array<{ at: number; grant: GrantView }> = [];
    const failed = await viewWhen(
      active.id,
      (grant) => {
        seen.push({ at: Date.now(), grant });
        return grant.state === 'REVOKE_FAILED';
      },
      40_000,
      'REVOKE_FAILED',
    );
    expect(failed.grant!.revokeAttempts).toBeGreaterThanOrEqual(REVOKE_ATTEMPTS);
    expect(failed.grant!.revokedAt).toBeNull();
    expect(failed.grant!.lastError).toMatch(/Webhook "ticketing"/);
    const early = seen.flatMap((before, index) => {
      const later = seen
        .slice(index + 1)
        .find(({ grant }) => grant.revokeAttempts > before.grant.revokeAttempts);
      const due = before.grant.nextRetryAt ? Date.parse(before.grant.nextRetryAt) : null;
      return later && due !== null && later.at < due ? [{ before, later }] : [];
    });
    expect(early).toEqual([]);
    expect(seen.filter(({ grant }) => grant.nextRetryAt !== null).length).toBeGreaterThan(1);

    await receiverUp();
    const confirmed = await viewWhen(active.id, (grant) => grant.state === 'REVOKED', 30_000, 'REVOKED');
    expect(confirmed.grant!.revokedAt).not.toBeNull();
  });

  it('answers 202 while an active extension revoked with the request is not yet confirmed', async () => {
    const alice = clientAs(stack, 'alice');
    const original = await activeRequest(600);
    const filed = await alice.post(`/api/requests/${original.id}/extend`, {
      durationSeconds: 600,
      justification: 'truthful revoke e2e, extension',
    });
    expect(filed.status).toBe(201);
    const extensionId = filed.body.id as string;
    expect((await clientAs(stack, 'bob').decide(extensionId, 'approve')).status).toBe(200);
    expect((await alice.decide(extensionId, 'activate')).status).toBe(200);
    await receiverDown();
    // As when the worker confirmed the original's grant before the answer was shaped: only the extension's
    // grant still waits for the receiver.
    await stack.db.query(`UPDATE grants SET state = 'REVOKED', revoked_at = now() WHERE request_id = $1`, [
      original.id,
    ]);

    const revoked = await revokeEarly(original.id);
    expect(revoked.status).toBe(202);
    expect((revoked.body as RequestView).grant!.state).toBe('REVOKED');
    const extension = await view(extensionId);
    expect(extension.state).toBe('REVOKED');
    expect(extension.grant!.state).not.toBe('REVOKED');

    await receiverUp();
    await viewWhen(extensionId, (grant) => grant.state === 'REVOKED', 30_000, 'the extension REVOKED');
  });

  it('ends the request of a REVOKE_FAILED grant left ACTIVE (as before issue 13), showing REVOKE_FAILED', async () => {
    const active = await activeRequest(600);
    await receiverDown();
    // What a grant that failed before issue 13 left: REVOKE_FAILED past notAfter, its request still ACTIVE.
    await stack.db.query(
      `UPDATE grants SET state = 'REVOKE_FAILED', revoke_attempts = 8, not_after = now() - interval '1 second',
              last_error = 'Webhook "ticketing" could not be reached to revoke'
        WHERE request_id = $1`,
      [active.id],
    );
    await stack.db.query(
      `UPDATE elevation_requests SET ends_at = now() - interval '1 second' WHERE id = $1`,
      [active.id],
    );

    // The sweep runs its revocation, which fails again (receiver down) but ends the request first.
    const ended = await waitFor(
      async () => {
        const request = await view(active.id);
        return request.state === 'ENDED' ? request : undefined;
      },
      15_000,
      `request ${active.id} to end`,
    );
    expect(ended.endReason).toBe('expired');
    expect(ended.grant).toMatchObject({ state: 'REVOKE_FAILED', revokedAt: null });
    const { rows } = await stack.db.query(
      `SELECT count(*)::int AS n FROM audit_events WHERE action = 'request.ended' AND request_id = $1`,
      [active.id],
    );
    expect(rows[0].n).toBe(1);

    await receiverUp();
    const confirmed = await viewWhen(active.id, (grant) => grant.state === 'REVOKED', 30_000, 'REVOKED');
    expect(confirmed.state).toBe('ENDED');
  });

  it('ends an expired request but shows its grant REVOKING, not revoked, while the receiver is down', async () => {
    const active = await activeRequest(1);
    await receiverDown();
    const notAfter = Date.parse(active.notAfter!);

    const failing = await viewWhen(
      active.id,
      (grant) => grant.revokeAttempts >= 1,
      15_000,
      'a failed attempt',
    );
    expect(failing.state).toBe('ENDED');
    expect(failing.endReason).toBe('expired');
    expect(failing.grant).toMatchObject({ state: 'REVOKING', revokedAt: null });
    expect(failing.grant!.nextRetryAt).not.toBeNull();

    await receiverUp();
    const confirmed = await viewWhen(active.id, (grant) => grant.state === 'REVOKED', 30_000, 'REVOKED');
    expect(confirmed.state).toBe('ENDED');
    expect(Date.parse(confirmed.grant!.revokedAt!)).toBeGreaterThan(notAfter);
  });
});
