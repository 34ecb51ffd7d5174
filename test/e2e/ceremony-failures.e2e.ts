// Issue 12, findings 1 and 5: every refused WebAuthn ceremony is a 4xx that is audited, counted and spends its
// challenge, whatever text a hostile client puts in clientDataJSON or the attestation; and out-of-order
// step-ups of one genuine passkey are a race, not a clone.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type {
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { verifyChain } from '../../libs/audit/chain.js';
import type { CeremonyOverrides } from '../support/soft-authenticator.js';
import {
  enroll,
  enrollAll,
  httpClient,
  inviteToken,
  startStack,
  type ApiResponse,
  type Person,
  type TestStack,
} from '../support/stack.js';
import { storedChain } from '../support/audit-chain.js';
import { SoftAuthenticator } from '../support/soft-authenticator.js';

/** Text PostgreSQL refuses in text and jsonb: U+0000, and a UTF-16 surrogate without its pair. */
const NUL = '\u0000';
const LONE_SURROGATE = '\uD800';

/** clientDataJSON members a browser never sends like this, signed genuinely by the soft authenticator. */
const HOSTILE_CLIENT_DATA: Array<[string, CeremonyOverrides]> = [
  ['topOrigin with U+0000', { clientDataFields: { topOrigin: `http://evil.example${NUL}` } }],
  [
    'topOrigin with a lone surrogate',
    { clientDataFields: { topOrigin: `http://evil.example${LONE_SURROGATE}` } },
  ],
  ['tokenBinding.status with U+0000', { clientDataFields: { tokenBinding: { status: `present${NUL}` } } }],
  [
    'tokenBinding.status with a lone surrogate',
    { clientDataFields: { tokenBinding: { status: `present${LONE_SURROGATE}` } } },
  ],
];

const HOSTILE_REGISTRATION: Array<[string, CeremonyOverrides]> = [
  ...HOSTILE_CLIENT_DATA,
  ['attestation fmt with U+0000', { attestationFormat: `none${NUL}` }],
];

/** What a re-used challenge answers: it was spent by the refusal. */
const SPENT = ['CHALLENGE_MISMATCH', 'CEREMONY_EXPIRED', 'STEP_UP_REPLAYED', 'STEP_UP_EXPIRED'];

async function lastSeq(stack: TestStack): Promise<string> {
  const { rows } = await stack.db.query(`SELECT coalesce(max(seq), 0)::text AS seq FROM audit_events`);
  return rows[0].seq as string;
}

async function eventsSince(stack: TestStack, seq: string) {
  const { rows } = await stack.db.query(
    `SELECT action, actor_id AS "actorId", data FROM audit_events WHERE seq > $1 ORDER BY seq`,
    [seq],
  );
  return rows as Array<{ action: string; actorId: string; data: Record<string, any> }>;
}

/** A 4xx, exactly one `<kind>.failed` event since `seq`, and a reason PostgreSQL could store. */
async function expectAuditedRefusal(
  stack: TestStack,
  answer: ApiResponse<any>,
  seq: string,
  kind: 'login' | 'enroll' | 'register' | 'step-up',
): Promise<void> {
  expect(answer.status).toBeGreaterThanOrEqual(400);
  expect(answer.status).toBeLessThan(500);
  expect(typeof answer.body?.error?.code).toBe('string');
  const events = await eventsSince(stack, seq);
  expect(events.map((event) => event.action)).toEqual([`${kind}.failed`]);
  const [failed] = events;
  expect(failed.data.code).toBe(answer.body.error.code);
  expect(typeof failed.data.reason).toBe('string');
  expect(failed.data.reason).not.toContain(NUL);
  expect(failed.data.reason).not.toMatch(/[\uD800-\uDFFF]/);
}

function expectSpent(answer: ApiResponse<any>): void {
  expect(answer.status).toBe(401);
  expect(SPENT).toContain(answer.body?.error?.code);
}

async function inviteRow(stack: TestStack, userId: string) {
  const { rows } = await stack.db.query(
    `SELECT used_at AS "usedAt", expires_at AS "expiresAt" FROM enrollment_invites WHERE user_id = $1`,
    [userId],
  );
  return rows;
}

async function authenticatorRow(stack: TestStack, credentialId: string) {
  const { rows } = await stack.db.query(
    `SELECT id, sign_count::int AS "signCount", disabled_at AS "disabledAt", disabled_reason AS "disabledReason"
       FROM authenticators WHERE credential_id = $1`,
    [credentialId],
  );
  return rows[0] as { id: string; signCount: number; disabledAt: Date | null; disabledReason: string | null };
}

/** Every stored event re-hashes to its stored hash: the sanitised text is what was hashed. */
async function expectChainHolds(stack: TestStack): Promise<void> {
  const events = await storedChain(stack.db);
  expect(verifyChain(events)).toBeNull();
}

describe('ceremony failures (issue 12 finding 1): hostile text is refused, audited, counted and spends the challenge', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startStack({ worker: false });
    await enrollAll(stack, ['alice', 'bob']);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it.each(HOSTILE_CLIENT_DATA)('login/verify: %s', async (_name, overrides) => {
    const alice = stack.people.get('alice')!;
    const anonymous = httpClient(stack, null);
    const options = await anonymous.post('/api/auth/login/options', {});
    expect(options.status).toBe(200);
    const seq = await lastSeq(stack);
    const refused = await anonymous.post('/api/auth/login/verify', {
      response: alice.authenticator.authenticate(options.body, overrides),
    });
    await expectAuditedRefusal(stack, refused, seq, 'login');
    const reused = await anonymous.post('/api/auth/login/verify', {
      response: alice.authenticator.authenticate(options.body),
    });
    expectSpent(reused);
  });

  it.each(HOSTILE_REGISTRATION)(
    'enroll/verify: %s, leaving the invite as any refused enrollment does',
    async (name, overrides) => {
      const username = `enrollee-${HOSTILE_REGISTRATION.findIndex(([other]) => other === name)}`;
      const token = await inviteToken(stack, username);
      const anonymous = httpClient(stack, null);
      const authenticator = new SoftAuthenticator({ origin: stack.origin });
      const { rows } = await stack.db.query(`SELECT id FROM users WHERE username = $1`, [username]);
      const userId = rows[0].id as string;
      const inviteBefore = await inviteRow(stack, userId);

      // A refusal the broker has always handled: the invite stays as it was, ready for another try.
      const ordinary = await anonymous.post('/api/auth/enroll/options', { invite: token });
      const unverified = await anonymous.post('/api/auth/enroll/verify', {
        invite: token,
        response: authenticator.register(ordinary.body, { userVerified: false }),
      });
      expect(unverified.body.error.code).toBe('USER_VERIFICATION_REQUIRED');
      const inviteAfterOrdinary = await inviteRow(stack, userId);
      expect(inviteAfterOrdinary).toEqual(inviteBefore);

      const creation = await anonymous.post('/api/auth/enroll/options', { invite: token });
      expect(creation.status).toBe(200);
      const seq = await lastSeq(stack);
      const refused = await anonymous.post('/api/auth/enroll/verify', {
        invite: token,
        response: authenticator.register(creation.body, overrides),
      });
      await expectAuditedRefusal(stack, refused, seq, 'enroll');
      expect(await inviteRow(stack, userId)).toEqual(inviteAfterOrdinary);
      const reused = await anonymous.post('/api/auth/enroll/verify', {
        invite: token,
        response: new SoftAuthenticator({ origin: stack.origin }).register(
          creation.body as PublicKeyCredentialCreationOptionsJSON,
        ),
      });
      expectSpent(reused);

      // As after any refused enrollment, a new ceremony on the same invite enrolls.
      const again = await anonymous.post('/api/auth/enroll/options', { invite: token });
      const enrolled = await anonymous.post('/api/auth/enroll/verify', {
        invite: token,
        response: authenticator.register(again.body),
      });
      expect(enrolled.status).toBe(200);
    },
  );

  it('enroll/verify ignores transport hints it does not know, U+0000 included, instead of answering 500', async () => {
    const token = await inviteToken(stack, 'hinted');
    const anonymous = httpClient(stack, null);
    const creation = await anonymous.post('/api/auth/enroll/options', { invite: token });
    const response = new SoftAuthenticator({ origin: stack.origin }).register(creation.body);
    response.response.transports = ['internal', `usb${NUL}`, `hybrid${LONE_SURROGATE}`] as never;
    const enrolled = await anonymous.post('/api/auth/enroll/verify', { invite: token, response });
    expect(enrolled.status).toBe(200);
    const { rows } = await stack.db.query(`SELECT transports FROM authenticators WHERE credential_id = $1`, [
      response.id,
    ]);
    expect(rows[0].transports).toEqual(['internal']);
  });

  it.each(HOSTILE_REGISTRATION)('me/authenticators/verify: %s', async (name, overrides) => {
    const person = await enroll(
      stack,
      `registrant-${HOSTILE_REGISTRATION.findIndex(([other]) => other === name)}`,
    );
    const creation = await person.post('/api/me/authenticators/options', {
      stepUp: await person.stepUp('authenticator.add', person.username, {}),
    });
    expect(creation.status).toBe(200);
    const seq = await lastSeq(stack);
    const refused = await person.post('/api/me/authenticators/verify', {
      response: new SoftAuthenticator({ origin: stack.origin }).register(creation.body, overrides),
    });
    await expectAuditedRefusal(stack, refused, seq, 'register');
    const reused = await person.post('/api/me/authenticators/verify', {
      response: new SoftAuthenticator({ origin: stack.origin }).register(creation.body),
    });
    expectSpent(reused);
  });

  it.each(HOSTILE_CLIENT_DATA)('a step-up (authenticator.add): %s', async (name, overrides) => {
    const person = await enroll(
      stack,
      `stepper-${HOSTILE_CLIENT_DATA.findIndex(([other]) => other === name)}`,
    );
    const issued = await person.post('/api/step-up/challenge', {
      action: 'authenticator.add',
      subjectId: person.username,
      params: {},
    });
    expect(issued.status).toBe(200);
    const options = issued.body.options as PublicKeyCredentialRequestOptionsJSON;
    const seq = await lastSeq(stack);
    const refused = await person.post('/api/me/authenticators/options', {
      stepUp: {
        challengeId: issued.body.challengeId,
        response: person.authenticator.authenticate(options, overrides),
      },
    });
    await expectAuditedRefusal(stack, refused, seq, 'step-up');
    const reused = await person.post('/api/me/authenticators/options', {
      stepUp: { challengeId: issued.body.challengeId, response: person.authenticator.authenticate(options) },
    });
    expectSpent(reused);
  });

  it('a step-up (approve) with U+0000 in topOrigin is refused and audited; seven in a row lock step-up at the fifth', async () => {
    const alice = stack.people.get('alice')!;
    const bob = stack.people.get('bob')!;
    const created = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 600,
      justification: 'ceremony failures e2e',
    });
    expect(created.status).toBe(201);
    const requestId = created.body.id as string;
    // Issued up front: once locked, no new challenge is handed out.
    const proofs = [];
    for (let attempt = 0; attempt < 7; attempt += 1) {
      proofs.push(
        await bob.stepUp('approve', requestId, undefined, {
          clientDataFields: { topOrigin: `http://evil.example${NUL}` },
        }),
      );
    }
    const answers: Array<[number, string]> = [];
    for (const proof of proofs) {
      const seq = await lastSeq(stack);
      const answer = await bob.post(`/api/requests/${requestId}/approve`, { stepUp: proof });
      answers.push([answer.status, answer.body.error.code]);
      if (answers.length === 1) await expectAuditedRefusal(stack, answer, seq, 'step-up');
    }
    const [first] = answers;
    expect(first[0]).toBe(401);
    expect(answers).toEqual([
      first,
      first,
      first,
      first,
      first,
      [429, 'STEP_UP_LOCKED'],
      [429, 'STEP_UP_LOCKED'],
    ]);
    const { rows } = await stack.db.query(
      `SELECT action, count(*)::int AS count FROM audit_events
        WHERE actor_id = $1 AND action IN ('step-up.failed', 'step-up.locked') GROUP BY action ORDER BY action`,
      [bob.userId],
    );
    expect(rows).toEqual([
      { action: 'step-up.failed', count: 5 },
      { action: 'step-up.locked', count: 1 },
    ]);
    const { rows: spent } = await stack.db.query(
      `SELECT count(*)::int AS open FROM step_up_challenges WHERE user_id = $1 AND used_at IS NULL`,
      [bob.userId],
    );
    // The two refused while locked were never looked at; the five that were are spent.
    expect(spent[0].open).toBe(2);
  });

  it('stores events whose hashes still verify', async () => {
    await expectChainHolds(stack);
  });
});

describe('concurrent step-ups of one passkey (issue 12 finding 5): a race, not a clone', () => {
  let stack: TestStack;
  let alice: Person;
  let dave: Person;

  beforeAll(async () => {
    stack = await startStack({ worker: false });
    [alice, dave] = await enrollAll(stack, ['alice', 'dave']);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  async function file(): Promise<string> {
    const created = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 600,
      justification: 'race e2e',
    });
    expect(created.status).toBe(201);
    return created.body.id as string;
  }

  it('answers older step-ups submitted at once after a newer one with 409 SIGN_COUNT_STALE each, disabling nothing', async () => {
    // One request per tab, so nothing but the counter can refuse them (not an earlier review by dave).
    const requestIds: string[] = [];
    for (let tab = 0; tab < 5; tab += 1) requestIds.push(await file());
    const proofs = [];
    for (const requestId of requestIds) proofs.push(await dave.stepUp('approve', requestId));
    // The tab that signed last is submitted first; the four that signed earlier lose the race by counter.
    const newest = await dave.post(`/api/requests/${requestIds[4]}/approve`, { stepUp: proofs[4] });
    expect(newest.status).toBe(200);
    const seq = await lastSeq(stack);
    const older = await Promise.all(
      proofs
        .slice(0, 4)
        .map((stepUp, tab) => dave.post(`/api/requests/${requestIds[tab]}/approve`, { stepUp })),
    );
    expect(older.map((answer) => [answer.status, answer.body?.error?.code])).toEqual(
      Array(4).fill([409, 'SIGN_COUNT_STALE']),
    );
    const events = await eventsSince(stack, seq);
    expect(events.map((event) => [event.action, event.data.code])).toEqual(
      Array(4).fill(['step-up.failed', 'SIGN_COUNT_STALE']),
    );
    const row = await authenticatorRow(stack, dave.authenticator.credentials[0].id);
    expect(row.disabledAt).toBeNull();
    // Dave can still confirm.
    expect((await dave.decide(await file(), 'approve')).status).toBe(200);
  });

  it('refuses older assertions after a newer one was accepted with 409 SIGN_COUNT_STALE: audited, not disabling, not counted', async () => {
    const first = await file();
    const second = await file();
    // Six tabs sign in turn; a seventh, signed last, is submitted first. Six is above the lockout limit (5).
    const older = [];
    for (let tab = 0; tab < 6; tab += 1) older.push(await dave.stepUp('approve', first));
    const newer = await dave.stepUp('approve', second);
    expect((await dave.post(`/api/requests/${second}/approve`, { stepUp: newer })).status).toBe(200);

    const seq = await lastSeq(stack);
    const answers = [];
    for (const stepUp of older) {
      const answer = await dave.post(`/api/requests/${first}/approve`, { stepUp });
      answers.push([answer.status, answer.body.error?.code]);
    }
    expect(answers).toEqual(older.map(() => [409, 'SIGN_COUNT_STALE']));
    const events = await eventsSince(stack, seq);
    expect(events.map((event) => [event.action, event.data.code])).toEqual(
      older.map(() => ['step-up.failed', 'SIGN_COUNT_STALE']),
    );
    expect((await authenticatorRow(stack, dave.authenticator.credentials[0].id)).disabledAt).toBeNull();
    // Spent like any refused step-up.
    expect((await dave.post(`/api/requests/${first}/approve`, { stepUp: older[0] })).body.error.code).toBe(
      'STEP_UP_REPLAYED',
    );
    // A race is not a guess: none of it locked dave out.
    expect((await dave.decide(first, 'approve')).status).toBe(200);
  });

  it('still disables a clone: a counter at or below the stored one over a challenge issued after it was accepted', async () => {
    const requestId = await file();
    const credentialId = dave.authenticator.credentials[0].id;
    const stored = (await authenticatorRow(stack, credentialId)).signCount;
    expect(stored).toBeGreaterThan(0);
    dave.authenticator.setSignCount(credentialId, stored - 1);
    const cloned = await dave.post(`/api/requests/${requestId}/approve`, {
      stepUp: await dave.stepUp('approve', requestId),
    });
    expect({ status: cloned.status, code: cloned.body.error.code }).toEqual({
      status: 401,
      code: 'SIGN_COUNT_REGRESSION',
    });
    expect(await authenticatorRow(stack, credentialId)).toMatchObject({
      disabledAt: expect.any(Date),
      disabledReason: 'sign-count-regression',
    });
  });

  it('disables a clone that signs the stored counter again, even over a login challenge fetched before it was stored', async () => {
    const frank = await enroll(stack, 'frank');
    const credentialId = frank.authenticator.credentials[0].id;
    const anonymous = httpClient(stack, null);
    // The clone's holder fetches a login challenge anonymously, then waits for the genuine key to be used.
    const early = await anonymous.post('/api/auth/login/options', {});
    expect(early.status).toBe(200);
    const later = await anonymous.post('/api/auth/login/options', {});
    const genuine = await anonymous.post('/api/auth/login/verify', {
      response: frank.authenticator.authenticate(later.body),
    });
    expect(genuine.status).toBe(200);
    const stored = (await authenticatorRow(stack, credentialId)).signCount;
    expect(stored).toBeGreaterThan(0);
    // A genuine authenticator never signs the same non-zero counter twice: a copy of the key did.
    const cloned = await anonymous.post('/api/auth/login/verify', {
      response: frank.authenticator.authenticate(early.body, { signCount: stored }),
    });
    expect({ status: cloned.status, code: cloned.body.error?.code }).toEqual({
      status: 401,
      code: 'SIGN_COUNT_REGRESSION',
    });
    expect(await authenticatorRow(stack, credentialId)).toMatchObject({
      disabledAt: expect.any(Date),
      disabledReason: 'sign-count-regression',
    });
  });

  it('keeps accepting authenticators without a counter (always 0), in any order', async () => {
    const erin = await enroll(stack, 'erin');
    const proofs = [];
    for (let tab = 0; tab < 3; tab += 1) {
      proofs.push(await erin.stepUp('authenticator.add', 'erin', {}, { signCount: 0 }));
    }
    const answers = await Promise.all(
      [...proofs].reverse().map((stepUp) => erin.post('/api/me/authenticators/options', { stepUp })),
    );
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200]);
    expect((await authenticatorRow(stack, erin.authenticator.credentials[0].id)).signCount).toBe(0);
  });
});
