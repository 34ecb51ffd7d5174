import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { decodeCBOR } from '@levischuck/tiny-cbor';
import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/server';
import canonicalize from 'canonicalize';
import { SoftAuthenticator, type CeremonyOverrides } from '../support/soft-authenticator.js';
import {
  enroll,
  PROJECT_ROOT,
  startStack,
  waitFor,
  type ApiResponse,
  type Person,
  type StepUpBody,
  type TestStack,
} from '../support/stack.js';

/** Anti-fatigue limits would otherwise refuse the many requests these suites file for the same people. */
const ROOMY_REQUEST_LIMITS = {
  MAX_OPEN_REQUESTS_PER_ENTITLEMENT: '1000',
  MAX_OPEN_REQUESTS: '1000',
  REQUEST_RATE_LIMIT: '1000',
};

/** Files a request as `requester`; demo-db-* entitlements need a ticket. */
async function newRequest(
  requester: Person,
  entitlementId = 'api-admin-token',
  extra: Record<string, unknown> = {},
): Promise<string> {
  const created = await requester.post('/api/requests', {
    entitlementId,
    durationSeconds: 600,
    justification: `step-up e2e (${entitlementId})`,
    ...(entitlementId.startsWith('demo-db') ? { ticket: 'INC-4242' } : {}),
    ...extra,
  });
  expect(created.status).toBe(201);
  return created.body.id as string;
}

/** Everything a decision or activation would change about a request. */
async function requestSnapshot(stack: TestStack, requestId: string) {
  const { rows } = await stack.db.query(
    `SELECT r.state, r.decided_at AS "decidedAt", r.activated_at AS "activatedAt", r.ends_at AS "endsAt",
            r.ended_at AS "endedAt",
            (SELECT count(*)::int FROM approvals a WHERE a.request_id = r.id) AS approvals,
            (SELECT count(*)::int FROM grants g WHERE g.request_id = r.id) AS grants,
            (SELECT count(*)::int FROM audit_events e WHERE e.request_id = r.id) AS events
       FROM elevation_requests r WHERE r.id = $1`,
    [requestId],
  );
  expect(rows).toHaveLength(1);
  return rows[0] as Record<string, unknown>;
}

/** The `step-up.failed` audit events of one challenge. */
async function stepUpFailures(stack: TestStack, person: Person, challengeId: string) {
  const { rows } = await stack.db.query(
    `SELECT actor_id AS "actorId", subject_id AS "subjectId", data FROM audit_events
      WHERE action = 'step-up.failed' AND actor_id = $1 AND data->>'challengeId' = $2 ORDER BY seq`,
    [person.userId, challengeId],
  );
  return rows as Array<{ actorId: string; subjectId: string; data: any }>;
}

/** A challenge from the broker, not yet answered, so a test can answer it with any authenticator. */
async function issueChallenge(person: Person, action: string, subjectId: string) {
  const issued = await person.post('/api/step-up/challenge', { action, subjectId });
  expect(issued.status).toBe(200);
  return issued.body as { challengeId: string; options: any; expiresAt: string };
}

function expectError(answer: ApiResponse<any>, status: number, code: string): void {
  expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code });
}

/**
 * Asserts a refused step-up: its own status and code, a `step-up.failed` audit event carrying that code, and
 * every request it might have touched exactly as before.
 */
async function expectRefused(
  stack: TestStack,
  attempt: () => Promise<ApiResponse<any>>,
  expected: { status?: number; code: string; person: Person; challengeId: string; requestIds: string[] },
): Promise<void> {
  const before = await Promise.all(expected.requestIds.map((id) => requestSnapshot(stack, id)));
  expectError(await attempt(), expected.status ?? 401, expected.code);
  expect(await stepUpFailures(stack, expected.person, expected.challengeId)).toEqual([
    expect.objectContaining({
      actorId: expected.person.userId,
      subjectId: expected.person.userId,
      data: expect.objectContaining({ code: expected.code, challengeId: expected.challengeId }),
    }),
  ]);
  expect(await Promise.all(expected.requestIds.map((id) => requestSnapshot(stack, id)))).toEqual(before);
}

/** Creation options no server ever issued, for a credential the broker has never seen. */
function fabricatedCreationOptions(): PublicKeyCredentialCreationOptionsJSON {
  return {
    rp: { id: 'localhost', name: 'nobody' },
    user: { id: randomBytes(16).toString('base64url'), name: 'stranger', displayName: 'Stranger' },
    challenge: randomBytes(32).toString('base64url'),
    pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
  };
}

/** policies/example.yaml with `authenticator: { deviceBound: true }` on demo-db-write, in a temp dir. */
async function deviceBoundPolicyDir(): Promise<string> {
  const example = await readFile(path.join(PROJECT_ROOT, 'policies', 'example.yaml'), 'utf8');
  const edited = example.replace(
    /^(\s*)# authenticator: \{ deviceBound: true \}.*$/m,
    '$1authenticator: { deviceBound: true }',
  );
  if (edited === example)
    throw new Error('policies/example.yaml no longer has the deviceBound line to enable');
  const dir = await mkdtemp(path.join(tmpdir(), 'jit-step-up-policy-'));
  await writeFile(path.join(dir, 'policy.yaml'), edited);
  return dir;
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest();

describe('request-bound step-up: each refusal has its own code and audit event', () => {
  let stack: TestStack;
  let policyDir: string;
  let alice: Person;
  let carol: Person;
  let bob: Person;
  let dave: Person;
  let admin: Person;

  beforeAll(async () => {
    policyDir = await deviceBoundPolicyDir();
    stack = await startStack({
      policyDir,
      worker: false,
      // Failures are counted per user; this suite fails on purpose many times. The lockout has its own stack.
      env: { STEP_UP_MAX_FAILURES: '1000', ...ROOMY_REQUEST_LIMITS },
    });
    alice = await enroll(stack, 'alice');
    carol = await enroll(stack, 'carol');
    bob = await enroll(stack, 'bob');
    dave = await enroll(stack, 'dave');
    // A synced (backup-eligible, backed-up) passkey, as a phone's password manager holds.
    admin = await enroll(stack, 'admin', { authenticator: { backupEligible: true, backedUp: true } });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  }, 30_000);

  it('refuses a challenge issued for request X on request Y (STEP_UP_SUBJECT_MISMATCH), and spends it', async () => {
    const requestX = await newRequest(alice);
    const requestY = await newRequest(carol);
    const stepUp = await bob.stepUp('approve', requestX);
    await expectRefused(stack, () => bob.post(`/api/requests/${requestY}/approve`, { stepUp }), {
      code: 'STEP_UP_SUBJECT_MISMATCH',
      person: bob,
      challengeId: stepUp.challengeId,
      requestIds: [requestX, requestY],
    });
    // A refused challenge is burned: it cannot be retried on the request it was issued for.
    expectError(await bob.post(`/api/requests/${requestX}/approve`, { stepUp }), 401, 'STEP_UP_REPLAYED');
    expect((await requestSnapshot(stack, requestX)).state).toBe('PENDING');
  });

  // Pairs used: an approver's `deny` challenge on /approve and `approve` challenge on /deny; the requester's
  // `revoke` challenge on /activate. The requester cannot hold an `approve` challenge for their own request
  // (refused up front with SELF_APPROVAL) and an approver cannot hold an `activate` one (NOT_REQUESTER).
  it('refuses a challenge issued for another action (STEP_UP_ACTION_MISMATCH)', async () => {
    const pending = await newRequest(alice);
    const denyChallenge = await bob.stepUp('deny', pending);
    await expectRefused(
      stack,
      () => bob.post(`/api/requests/${pending}/approve`, { stepUp: denyChallenge }),
      {
        code: 'STEP_UP_ACTION_MISMATCH',
        person: bob,
        challengeId: denyChallenge.challengeId,
        requestIds: [pending],
      },
    );
    const approveChallenge = await bob.stepUp('approve', pending);
    await expectRefused(
      stack,
      () => bob.post(`/api/requests/${pending}/deny`, { stepUp: approveChallenge, reason: 'not now' }),
      {
        code: 'STEP_UP_ACTION_MISMATCH',
        person: bob,
        challengeId: approveChallenge.challengeId,
        requestIds: [pending],
      },
    );

    const approved = await newRequest(alice);
    expect((await dave.decide(approved, 'approve')).body.state).toBe('APPROVED');
    const revokeChallenge = await alice.stepUp('revoke', approved);
    await expectRefused(
      stack,
      () => alice.post(`/api/requests/${approved}/activate`, { stepUp: revokeChallenge }),
      {
        code: 'STEP_UP_ACTION_MISMATCH',
        person: alice,
        challengeId: revokeChallenge.challengeId,
        requestIds: [approved],
      },
    );
    expect((await requestSnapshot(stack, approved)).state).toBe('APPROVED');
  });

  it('refuses a replayed assertion (STEP_UP_REPLAYED)', async () => {
    const requestId = await newRequest(alice);
    const stepUp = await bob.stepUp('approve', requestId);
    const first = await bob.post(`/api/requests/${requestId}/approve`, { stepUp });
    expect(first.status).toBe(200);
    expect(first.body.state).toBe('APPROVED');
    await expectRefused(stack, () => bob.post(`/api/requests/${requestId}/approve`, { stepUp }), {
      code: 'STEP_UP_REPLAYED',
      person: bob,
      challengeId: stepUp.challengeId,
      requestIds: [requestId],
    });
  });

  const tampered: Array<[string, CeremonyOverrides, string]> = [
    ['the user-verified flag is cleared', { userVerified: false }, 'USER_VERIFICATION_REQUIRED'],
    ['the ceremony ran on another origin', { origin: 'https://evil.example' }, 'ORIGIN_MISMATCH'],
    ['the assertion is scoped to another rpID', { rpId: 'evil.example' }, 'RP_ID_MISMATCH'],
  ];
  it.each(tampered)('refuses an assertion when %s (%s)', async (_what, overrides, code) => {
    const requestId = await newRequest(alice);
    const stepUp = await bob.stepUp('approve', requestId, undefined, overrides);
    await expectRefused(stack, () => bob.post(`/api/requests/${requestId}/approve`, { stepUp }), {
      code,
      person: bob,
      challengeId: stepUp.challengeId,
      requestIds: [requestId],
    });
  });

  it('refuses a credential the broker never registered (UNKNOWN_CREDENTIAL)', async () => {
    const requestId = await newRequest(alice);
    const stranger = new SoftAuthenticator({ origin: stack.origin });
    const registration = stranger.register(fabricatedCreationOptions());
    const issued = await issueChallenge(bob, 'approve', requestId);
    const stepUp: StepUpBody = {
      challengeId: issued.challengeId,
      response: stranger.authenticate(issued.options, { credentialId: registration.id }),
    };
    await expectRefused(stack, () => bob.post(`/api/requests/${requestId}/approve`, { stepUp }), {
      code: 'UNKNOWN_CREDENTIAL',
      person: bob,
      challengeId: issued.challengeId,
      requestIds: [requestId],
    });
  });

  it("refuses another user's passkey answering the challenge (CREDENTIAL_NOT_YOURS)", async () => {
    const requestId = await newRequest(alice);
    const issued = await issueChallenge(bob, 'approve', requestId);
    const stepUp: StepUpBody = {
      challengeId: issued.challengeId,
      response: dave.authenticator.authenticate(issued.options, {
        credentialId: dave.authenticator.credentials[0].id,
      }),
    };
    await expectRefused(stack, () => bob.post(`/api/requests/${requestId}/approve`, { stepUp }), {
      code: 'CREDENTIAL_NOT_YOURS',
      person: bob,
      challengeId: issued.challengeId,
      requestIds: [requestId],
    });
  });

  it('refuses a backup-eligible passkey on a device-bound entitlement (403 AUTHENTICATOR_NOT_ALLOWED)', async () => {
    const deviceBound = await newRequest(alice, 'demo-db-write');
    const stepUp = await admin.stepUp('approve', deviceBound);
    await expectRefused(stack, () => admin.post(`/api/requests/${deviceBound}/approve`, { stepUp }), {
      status: 403,
      code: 'AUTHENTICATOR_NOT_ALLOWED',
      person: admin,
      challengeId: stepUp.challengeId,
      requestIds: [deviceBound],
    });
    // A device-bound key approves it; the synced key still approves what does not demand device binding.
    const byBob = await bob.decide(deviceBound, 'approve');
    expect(byBob.status).toBe(200);
    expect((await requestSnapshot(stack, deviceBound)).approvals).toBe(1);
    const unrestricted = await newRequest(alice);
    expect((await admin.decide(unrestricted, 'approve')).body.state).toBe('APPROVED');
  });

  it('refuses self-approval up front (403 SELF_APPROVAL), before any passkey is touched', async () => {
    const own = await newRequest(alice);
    const before = await requestSnapshot(stack, own);
    for (const action of ['approve', 'deny']) {
      expectError(
        await alice.post('/api/step-up/challenge', { action, subjectId: own }),
        403,
        'SELF_APPROVAL',
      );
    }
    expectError(await alice.post(`/api/requests/${own}/approve`, {}), 403, 'SELF_APPROVAL');
    expectError(await alice.post(`/api/requests/${own}/deny`, { reason: 'no' }), 403, 'SELF_APPROVAL');
    expect(await requestSnapshot(stack, own)).toEqual(before);
    const { rows } = await stack.db.query(
      `SELECT count(*)::int AS n FROM step_up_challenges WHERE user_id = $1 AND subject_id = $2`,
      [alice.userId, own],
    );
    expect(rows[0].n).toBe(0);
  });

  it('stores evidence that verifies offline: challenge, subject digest and signature recomputed independently', async () => {
    // A scheduled request with a ticket, so notBefore and ticket are covered by the digest with real values.
    const notBefore = new Date(Date.now() + 3600_000);
    notBefore.setUTCMilliseconds(0);
    const requestId = await newRequest(alice, 'demo-db-read', { notBefore: notBefore.toISOString() });
    const approved = await bob.decide(requestId, 'approve', { comment: 'checked INC-4242' });
    expect(approved.status).toBe(200);

    const {
      rows: [approval],
    } = await stack.db.query(
      `SELECT approver_id AS "approverId", decision, credential_id AS "credentialId",
              authenticator_data AS "authenticatorData", client_data_json AS "clientDataJson", signature, nonce,
              subject_digest AS "subjectDigest"
         FROM approvals WHERE request_id = $1`,
      [requestId],
    );
    expect(approval).toMatchObject({ approverId: bob.userId, decision: 'approve' });
    const {
      rows: [request],
    } = await stack.db.query(`SELECT * FROM elevation_requests WHERE id = $1`, [requestId]);
    const {
      rows: [authenticator],
    } = await stack.db.query(
      `SELECT user_id AS "userId", public_key AS "publicKey" FROM authenticators WHERE credential_id = $1`,
      [approval.credentialId],
    );
    expect(authenticator.userId).toBe(bob.userId);

    // subjectDigest = base64url(sha256(JCS(the request's immutable fields))), from the stored row.
    const subject = {
      id: request.id,
      requesterId: request.requester_id,
      entitlementId: request.entitlement_id,
      policyHash: request.policy_hash,
      scope: request.scope,
      durationSeconds: request.duration_seconds,
      justification: request.justification,
      ticket: request.ticket,
      notBefore: request.not_before === null ? null : (request.not_before as Date).toISOString(),
      breakGlass: request.break_glass,
      extendsRequestId: request.extends_request_id,
      sshPublicKey: request.ssh_public_key,
    };
    expect(subject).toMatchObject({
      requesterId: alice.userId,
      ticket: 'INC-4242',
      notBefore: notBefore.toISOString(),
    });
    const digest = sha256(canonicalize(subject)!).toString('base64url');
    expect(approval.subjectDigest).toBe(digest);

    // challenge = sha256(JCS(["jit-step-up/v1", nonce, approverUserId, "approve", requestId, subjectDigest])).
    const challenge = sha256(
      canonicalize(['jit-step-up/v1', approval.nonce, bob.userId, 'approve', requestId, digest])!,
    ).toString('base64url');
    const clientData = JSON.parse((approval.clientDataJson as Buffer).toString('utf8'));
    expect(clientData).toMatchObject({ type: 'webauthn.get', challenge, origin: stack.origin });

    const authenticatorData = approval.authenticatorData as Buffer;
    expect(authenticatorData.subarray(0, 32)).toEqual(sha256('localhost'));
    // User present and user verified.
    expect(authenticatorData[32] & 0x05).toBe(0x05);

    // The COSE key (RFC 9053: kty 2 = EC2, alg -7 = ES256, crv 1 = P-256, -2 = x, -3 = y) as a JWK.
    const cose = decodeCBOR(new Uint8Array(authenticator.publicKey as Buffer)) as Map<number, unknown>;
    expect([cose.get(1), cose.get(3), cose.get(-1)]).toEqual([2, -7, 1]);
    const publicKey = createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: Buffer.from(cose.get(-2) as Uint8Array).toString('base64url'),
        y: Buffer.from(cose.get(-3) as Uint8Array).toString('base64url'),
      },
      format: 'jwk',
    });
    const signed = (clientDataJson: Buffer) => Buffer.concat([authenticatorData, sha256(clientDataJson)]);
    expect(verify('sha256', signed(approval.clientDataJson), publicKey, approval.signature)).toBe(true);
    // The signature covers the challenge: the same evidence for a `deny` does not verify.
    const denyChallenge = sha256(
      canonicalize(['jit-step-up/v1', approval.nonce, bob.userId, 'deny', requestId, digest])!,
    ).toString('base64url');
    const forged = Buffer.from(JSON.stringify({ ...clientData, challenge: denyChallenge }), 'utf8');
    expect(verify('sha256', signed(forged), publicKey, approval.signature)).toBe(false);

    // The audit event carries the same evidence.
    const {
      rows: [event],
    } = await stack.db.query(
      `SELECT data FROM audit_events WHERE action = 'approval.recorded' AND request_id = $1`,
      [requestId],
    );
    expect(event.data.evidence).toMatchObject({
      userId: bob.userId,
      action: 'approve',
      subjectId: requestId,
      subjectDigest: digest,
      nonce: approval.nonce,
      credentialId: approval.credentialId,
      authenticatorData: authenticatorData.toString('base64url'),
      clientDataJSON: (approval.clientDataJson as Buffer).toString('base64url'),
      signature: (approval.signature as Buffer).toString('base64url'),
      publicKey: (authenticator.publicKey as Buffer).toString('base64url'),
    });
  });
});

describe('step-up challenge lifetime (STEP_UP_TTL_SECONDS=1)', () => {
  let stack: TestStack;
  let alice: Person;
  let bob: Person;

  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { STEP_UP_TTL_SECONDS: '1' } });
    alice = await enroll(stack, 'alice');
    bob = await enroll(stack, 'bob');
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('refuses an assertion answering an expired challenge (STEP_UP_EXPIRED)', async () => {
    const requestId = await newRequest(alice);
    const stepUp = await bob.stepUp('approve', requestId);
    await waitFor(
      async () => {
        const { rows } = await stack.db.query(
          `SELECT expires_at <= now() AS expired FROM step_up_challenges WHERE id = $1`,
          [stepUp.challengeId],
        );
        return rows[0].expired ? true : undefined;
      },
      10_000,
      'the step-up challenge to expire',
    );
    await expectRefused(stack, () => bob.post(`/api/requests/${requestId}/approve`, { stepUp }), {
      code: 'STEP_UP_EXPIRED',
      person: bob,
      challengeId: stepUp.challengeId,
      requestIds: [requestId],
    });
  }, 20_000);
});

describe('step-up lockout (STEP_UP_MAX_FAILURES=3)', () => {
  let stack: TestStack;
  let alice: Person;
  let bob: Person;
  let dave: Person;

  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { STEP_UP_MAX_FAILURES: '3', ...ROOMY_REQUEST_LIMITS } });
    alice = await enroll(stack, 'alice');
    bob = await enroll(stack, 'bob');
    dave = await enroll(stack, 'dave');
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('locks step-up after 3 failures: 429 STEP_UP_LOCKED, a step-up.locked alert, other users unaffected', async () => {
    const requestId = await newRequest(alice);
    // Issued before the lock and answered correctly after it: the lock still holds.
    const earlier = await bob.stepUp('approve', requestId);
    for (let failure = 1; failure <= 3; failure++) {
      const stepUp = await bob.stepUp('approve', requestId, undefined, { userVerified: false });
      await expectRefused(stack, () => bob.post(`/api/requests/${requestId}/approve`, { stepUp }), {
        code: 'USER_VERIFICATION_REQUIRED',
        person: bob,
        challengeId: stepUp.challengeId,
        requestIds: [requestId],
      });
    }

    const locked = await bob.post('/api/step-up/challenge', { action: 'approve', subjectId: requestId });
    expectError(locked, 429, 'STEP_UP_LOCKED');
    expect(new Date(locked.body.error.details.lockedUntil).getTime()).toBeGreaterThan(Date.now());
    const { rows } = await stack.db.query(
      `SELECT actor_id AS "actorId", subject_id AS "subjectId", data FROM audit_events WHERE action = 'step-up.locked'`,
    );
    expect(rows).toEqual([
      {
        actorId: bob.userId,
        subjectId: bob.userId,
        data: expect.objectContaining({
          alert: true,
          failures: 3,
          lockedUntil: locked.body.error.details.lockedUntil,
        }),
      },
    ]);

    const before = await requestSnapshot(stack, requestId);
    expectError(
      await bob.post(`/api/requests/${requestId}/approve`, { stepUp: earlier }),
      429,
      'STEP_UP_LOCKED',
    );
    expect(await requestSnapshot(stack, requestId)).toEqual(before);

    // The lock is bob's alone.
    expect((await dave.decide(requestId, 'approve')).body.state).toBe('APPROVED');
  });
});

describe('per-IP ceremony rate limit (IP_RATE_LIMIT=5)', () => {
  const LIMIT = 5;
  let stack: TestStack;
  let alice: Person;

  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { IP_RATE_LIMIT: String(LIMIT) } });
    // Enrollment is two ceremony calls (options, verify) from this address.
    alice = await enroll(stack, 'alice');
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('answers 429 RATE_LIMITED once the address has used its ceremonies, for sign-in and step-up alike', async () => {
    const statuses: number[] = [];
    let refused: ApiResponse<any> | undefined;
    for (let attempt = 0; attempt < LIMIT + 2; attempt++) {
      const answer = await alice.post('/api/auth/login/options', {});
      statuses.push(answer.status);
      refused ??= answer.status === 429 ? answer : undefined;
    }
    expect(statuses).toEqual([...Array(LIMIT - 2).fill(200), ...Array(4).fill(429)]);
    expectError(refused!, 429, 'RATE_LIMITED');
    expect(refused!.body.error.details.retryAfterSeconds).toBeGreaterThan(0);

    expectError(
      await alice.post('/api/step-up/challenge', {
        action: 'authenticator.add',
        subjectId: 'alice',
        params: {},
      }),
      429,
      'RATE_LIMITED',
    );
    // Calls that are not ceremonies are not counted.
    expect((await alice.get('/api/me')).status).toBe(200);
  });
});
