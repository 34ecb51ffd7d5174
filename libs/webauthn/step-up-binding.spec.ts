import { createHash } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import {
  newNonce,
  requestSubject,
  STEP_UP_ACTIONS,
  STEP_UP_DOMAIN,
  stepUpChallenge,
  subjectDigest,
  type RequestSubject,
  type StepUpAction,
  type StoredRequest,
  REQUEST_SUBJECT_FIELDS,
} from './step-up-binding.js';

// Fixed literals (not newNonce()) so the known answers below never move.
const NONCE = 'eDd7UldXtJRCf4kBT5fXmSjzk40U61HiD7XeyYNOswQ';
const DIGEST = 'C_R0iWNjUF5epeXWrOjr-xOnYKQJsftGfUKPxxb58oQ';
const USER_ID = '2f0e5c1a-8b5e-4c1e-9d7a-1c2b3d4e5f60';
const REQUEST_ID = '9a7b6c5d-4e3f-4a1b-8c2d-0e1f2a3b4c5d';

const base = { nonce: NONCE, userId: USER_ID, action: 'approve' as StepUpAction, subjectId: REQUEST_ID };

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function storedRow(): StoredRequest & Record<string, unknown> {
  return {
    id: REQUEST_ID,
    requesterId: '11111111-2222-4333-8444-555555555555',
    entitlementId: 'prod-db-read',
    policyHash: 'sha256:abc',
    scope: { role: 'read-only', database: 'orders' },
    durationSeconds: 3600,
    justification: 'INC-42: inspect stuck orders',
    ticket: 'INC-42',
    notBefore: new Date('2026-03-01T09:30:00.000Z'),
    breakGlass: false,
    extendsRequestId: null,
    sshPublicKey: null,
    // Mutable columns a real row carries alongside the immutable ones.
    state: 'PENDING',
    approvalsRequired: 2,
    createdAt: new Date('2026-03-01T09:00:00.000Z'),
    pendingUntil: new Date('2026-03-02T09:00:00.000Z'),
    decidedAt: null,
    activateBy: null,
    activatedAt: null,
    endsAt: null,
    endedAt: null,
    endReason: null,
  };
}

describe('stepUpChallenge', () => {
  it('is sha256 of the JCS array [domain, nonce, userId, action, subjectId, subjectDigest]', () => {
    const text = `["jit-step-up/v1","${NONCE}","${USER_ID}","approve","${REQUEST_ID}","${DIGEST}"]`;
    const challenge = stepUpChallenge({ ...base, subjectDigest: DIGEST });
    expect(challenge).toBeInstanceOf(Buffer);
    expect(challenge).toHaveLength(32);
    expect(challenge.equals(sha256(text))).toBe(true);
    // Pinned too, so a change to both the code and the hand-built text above still shows up.
    expect(challenge.toString('hex')).toBe(
      'bfdda53b1f10ffb61c8cae33b88e71c3af3a28cf752559fbd5b0e18628539bb5',
    );
    expect(STEP_UP_DOMAIN).toBe('jit-step-up/v1');
  });

  it('escapes strings as JCS does, so a quote in an id cannot end its field early', () => {
    const challenge = stepUpChallenge({ ...base, subjectId: 'a"b\\c', subjectDigest: DIGEST });
    const text = `["jit-step-up/v1","${NONCE}","${USER_ID}","approve","a\\"b\\\\c","${DIGEST}"]`;
    expect(challenge.equals(sha256(text))).toBe(true);
  });

  it('changes with every input', () => {
    const reference = stepUpChallenge({ ...base, subjectDigest: DIGEST }).toString('hex');
    const variants = [
      { ...base, subjectDigest: DIGEST, nonce: newNonce() },
      { ...base, subjectDigest: DIGEST, userId: 'another-user' },
      { ...base, subjectDigest: DIGEST, action: 'deny' as const },
      { ...base, subjectDigest: DIGEST, subjectId: 'another-request' },
      { ...base, subjectDigest: subjectDigest({ other: true }) },
    ];
    const challenges = variants.map((variant) => stepUpChallenge(variant).toString('hex'));
    expect(new Set([reference, ...challenges]).size).toBe(variants.length + 1);
  });

  it('gives a different challenge for every action on the same subject', () => {
    const challenges = STEP_UP_ACTIONS.map((action) =>
      stepUpChallenge({ ...base, action, subjectDigest: DIGEST }).toString('hex'),
    );
    expect(new Set(challenges).size).toBe(STEP_UP_ACTIONS.length);
  });

  it('is not fooled by inputs whose plain concatenation collides (DESIGN §5 shorthand)', () => {
    const first = {
      ...base,
      userId: 'u',
      action: 'deny' as const,
      subjectId: 'revoke1',
      subjectDigest: DIGEST,
    };
    const second = {
      ...base,
      userId: 'udeny',
      action: 'revoke' as const,
      subjectId: '1',
      subjectDigest: DIGEST,
    };
    const concat = (input: typeof first | typeof second) =>
      input.nonce + input.userId + input.action + input.subjectId + input.subjectDigest;
    expect(concat(first)).toBe(concat(second));
    expect(stepUpChallenge(first).equals(stepUpChallenge(second))).toBe(false);

    // A separator does not help either once a value may contain it.
    const piped = { ...base, userId: 'u|approve|x', subjectId: 'y', subjectDigest: DIGEST };
    const shifted = { ...base, userId: 'u', subjectId: 'x|approve|y', subjectDigest: DIGEST };
    const join = (input: typeof piped) =>
      [input.nonce, input.userId, input.action, input.subjectId, input.subjectDigest].join('|');
    expect(join(piped)).toBe(join(shifted));
    expect(stepUpChallenge(piped).equals(stepUpChallenge(shifted))).toBe(false);
  });

  const lastCharWithPadBits = NONCE.slice(0, -1) + 'R'; // 'Q' and 'R' differ only in the two ignored bits
  it.each([
    ['standard base64 alphabet', `+${NONCE.slice(1)}`],
    ['padding', `${NONCE}=`],
    ['16 bytes', newNonce().slice(0, 22)],
    ['hex of 32 bytes', 'ab'.repeat(32)],
    ['non-zero pad bits (a second spelling of the same bytes)', lastCharWithPadBits],
    ['empty', ''],
    ['not a string', 42],
  ])('rejects a nonce that is %s', (_label, nonce) => {
    expect(() => stepUpChallenge({ ...base, nonce: nonce as string, subjectDigest: DIGEST })).toThrow(
      new TypeError('nonce must be the unpadded base64url encoding of exactly 32 bytes'),
    );
  });

  it.each([
    ['hex of 32 bytes', createHash('sha256').update('x').digest('hex')],
    ['standard base64 with padding', createHash('sha256').update('x').digest('base64')],
    ['non-zero pad bits', DIGEST.slice(0, -1) + 'R'],
    ['too long', `${DIGEST}AAAA`],
  ])('rejects a subjectDigest that is %s', (_label, digest) => {
    expect(() => stepUpChallenge({ ...base, subjectDigest: digest })).toThrow(
      new TypeError('subjectDigest must be the unpadded base64url encoding of exactly 32 bytes'),
    );
  });

  it.each(['APPROVE', 'approve ', 'delete', '', 'audit'])('rejects the action %j', (action) => {
    expect(() => stepUpChallenge({ ...base, action: action as StepUpAction, subjectDigest: DIGEST })).toThrow(
      TypeError,
    );
    expect(() => stepUpChallenge({ ...base, action: action as StepUpAction, subjectDigest: DIGEST })).toThrow(
      /is not one of: approve, deny/,
    );
  });

  it.each([
    ['userId', ''],
    ['subjectId', ''],
    ['userId', undefined],
    ['subjectId', null],
  ])('rejects %s = %p', (field, value) => {
    expect(() => stepUpChallenge({ ...base, subjectDigest: DIGEST, [field]: value })).toThrow(
      new TypeError(`${field} must be a non-empty string`),
    );
  });
});

describe('STEP_UP_ACTIONS', () => {
  it('lists exactly the actions of DESIGN §5 and cannot be extended at run time', () => {
    expect([...STEP_UP_ACTIONS]).toEqual([
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
    ]);
    expect(Object.isFrozen(STEP_UP_ACTIONS)).toBe(true);
  });
});

describe('newNonce', () => {
  it('is 32 random bytes in base64url and accepted by stepUpChallenge', () => {
    const nonce = newNonce();
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(nonce, 'base64url')).toHaveLength(32);
    expect(newNonce()).not.toBe(nonce);
    expect(() => stepUpChallenge({ ...base, nonce, subjectDigest: DIGEST })).not.toThrow();
  });
});

describe('subjectDigest', () => {
  it('is base64url(sha256(JCS)) of the subject, with notBefore as its ISO string', () => {
    const text =
      '{"breakGlass":false,"durationSeconds":3600,"entitlementId":"prod-db-read","extendsRequestId":null,' +
      `"id":"${REQUEST_ID}","justification":"INC-42: inspect stuck orders","notBefore":"2026-03-01T09:30:00.000Z",` +
      '"policyHash":"sha256:abc","requesterId":"11111111-2222-4333-8444-555555555555",' +
      '"scope":{"database":"orders","role":"read-only"},"sshPublicKey":null,"ticket":"INC-42"}';
    const subject = requestSubject(storedRow());
    expect(subject.notBefore).toBe('2026-03-01T09:30:00.000Z');
    expect(subjectDigest(subject)).toBe(sha256(text).toString('base64url'));
  });

  it('does not depend on key order, at any depth', () => {
    expect(subjectDigest({ a: 1, b: { c: [1, { e: 2, d: 3 }], f: null } })).toBe(
      subjectDigest({ b: { f: null, c: [1, { d: 3, e: 2 }] }, a: 1 }),
    );
    const row = storedRow();
    const reversed = Object.fromEntries(Object.entries(row).reverse()) as typeof row;
    expect(subjectDigest(requestSubject(reversed))).toBe(subjectDigest(requestSubject(row)));
  });

  it('yields a digest stepUpChallenge accepts', () => {
    const digest = subjectDigest(requestSubject(storedRow()));
    expect(() => stepUpChallenge({ ...base, subjectDigest: digest })).not.toThrow();
  });

  it('tells apart values JSON would otherwise blur (order in arrays, types, null vs absent)', () => {
    const digests = [
      { scope: [1, 2] },
      { scope: [2, 1] },
      { scope: '3600' },
      { scope: 3600 },
      { scope: null },
      {},
    ].map(subjectDigest);
    expect(new Set(digests).size).toBe(digests.length);
  });

  it.each([
    ['undefined in an object', { a: undefined }, '$.a has no JSON form (undefined)'],
    ['undefined in an array', [1, undefined], '$[1] has no JSON form (undefined)'],
    ['a hole in an array', [1, , 3], '$[1] has no JSON form (undefined)'], // eslint-disable-line no-sparse-arrays
    ['NaN', { n: Number.NaN }, '$.n is not a finite number'],
    ['Infinity', { n: [Infinity] }, '$.n[0] is not a finite number'],
    ['a Date', { notBefore: new Date(0) }, '$.notBefore is not a plain object (Date)'],
    ['a Map', { m: new Map() }, '$.m is not a plain object (Map)'],
    ['a bigint', { b: 1n }, '$.b has no JSON form (bigint)'],
    ['a function', { f: () => 1 }, '$.f has no JSON form (function)'],
  ])('refuses %s', (_label, subject, message) => {
    expect(() => subjectDigest(subject)).toThrow(new TypeError(message));
  });
});

describe('requestSubject', () => {
  it('picks exactly the immutable fields of DESIGN §4', () => {
    expect(Object.keys(requestSubject(storedRow())).sort()).toEqual(
      [
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
      ].sort(),
    );
  });

  // One row per immutable field; the test below checks the table covers every key requestSubject returns.
  const changes: Record<keyof RequestSubject, (row: StoredRequest) => void> = {
    id: (row) => (row.id = '00000000-0000-4000-8000-000000000000'),
    requesterId: (row) => (row.requesterId = '00000000-0000-4000-8000-000000000001'),
    entitlementId: (row) => (row.entitlementId = 'prod-db-write'),
    policyHash: (row) => (row.policyHash = 'sha256:abd'),
    scope: (row) => (row.scope = { role: 'read-only', database: 'payments' }),
    durationSeconds: (row) => (row.durationSeconds = 3601),
    justification: (row) => (row.justification = 'INC-42: inspect stuck orders.'),
    ticket: (row) => (row.ticket = null),
    notBefore: (row) => (row.notBefore = new Date('2026-03-01T09:30:00.001Z')),
    breakGlass: (row) => (row.breakGlass = true),
    extendsRequestId: (row) => (row.extendsRequestId = '00000000-0000-4000-8000-000000000002'),
    sshPublicKey: (row) =>
      (row.sshPublicKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfDtIL1uxj0n1DjPGmeMYNYl2nH7qDH7w1oYUpyUzLx'),
  };

  it('has a change-table row for every immutable field', () => {
    expect(Object.keys(changes).sort()).toEqual(Object.keys(requestSubject(storedRow())).sort());
  });

  it('names every field of requestSubject in REQUEST_SUBJECT_FIELDS, in the same order', () => {
    expect([...REQUEST_SUBJECT_FIELDS]).toEqual(Object.keys(requestSubject(storedRow())));
  });

  it.each(Object.entries(changes))('changes the digest when %s changes', (_field, change) => {
    const row = storedRow();
    change(row);
    expect(subjectDigest(requestSubject(row))).not.toBe(subjectDigest(requestSubject(storedRow())));
  });

  it.each([
    ['ticket', (row: StoredRequest) => (row.ticket = '')],
    ['notBefore', (row: StoredRequest) => (row.notBefore = null)],
    [
      'scope (nested value)',
      (row: StoredRequest) => (row.scope = { role: 'read-write', database: 'orders' }),
    ],
  ])('changes the digest for the edge case %s', (_field, change) => {
    const row = storedRow();
    change(row);
    expect(subjectDigest(requestSubject(row))).not.toBe(subjectDigest(requestSubject(storedRow())));
  });

  it('ignores the mutable columns of a row (state, timestamps)', () => {
    const before = subjectDigest(requestSubject(storedRow()));
    const after = {
      ...storedRow(),
      state: 'APPROVED',
      approvalsRequired: 3,
      createdAt: new Date('2030-01-01T00:00:00.000Z'),
      pendingUntil: null,
      decidedAt: new Date('2026-03-01T10:00:00.000Z'),
      activateBy: new Date('2026-03-01T11:00:00.000Z'),
      activatedAt: new Date('2026-03-01T10:30:00.000Z'),
      endsAt: new Date('2026-03-01T11:30:00.000Z'),
      endedAt: new Date('2026-03-01T11:30:00.000Z'),
      endReason: 'expired',
      aColumnAddedLater: 'x',
    };
    expect(subjectDigest(requestSubject(after))).toBe(before);
  });

  it('gives the same digest for the same instant however the Date was made', () => {
    const row = storedRow();
    row.notBefore = new Date(Date.UTC(2026, 2, 1, 9, 30, 0, 0));
    expect(subjectDigest(requestSubject(row))).toBe(subjectDigest(requestSubject(storedRow())));
  });

  it('refuses an invalid notBefore Date rather than hashing "Invalid Date"', () => {
    const row = storedRow();
    row.notBefore = new Date('not a date');
    expect(() => requestSubject(row)).toThrow(new TypeError('request.notBefore is an invalid Date'));
  });
});
