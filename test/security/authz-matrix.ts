/**
 * The authorization matrix (issue 20 point 4) as data: every registered route × every kind of caller, with the
 * status the broker must answer. test/security/authz-matrix.e2e.ts runs every cell against one stack and fails
 * on a registered route missing here, or on a row for a route that no longer exists.
 *
 * Callers (`Role`): anonymous (no cookie); owner (alice, the requester who owns every object below); other
 * (carol, another requester eligible for the same entitlement); outsider (erin, an approver, but only of the
 * `other` entitlement's group); approver (bob, in the approver group of `tok`, the entitlement of alice's
 * requests); auditor (role auditor); admin (role admin); suspended (sam, suspended by the admin through the
 * API, calling with the cookie he had before); workload (issue 21: matrix-bot, with a valid OIDC bearer token
 * of the suite's local issuer and no cookie, eligible for tok). A workload may call only POST /api/requests and
 * GET, wait, activate and cancel of a request (session.guard.ts, WorkloadAllowed): every other signed-in route
 * is 403 WORKLOAD_FORBIDDEN, public routes ignore its bearer, and the runner checks that a refused workload cell
 * wrote nothing.
 *
 * Objects: `:id` is a real object of alice's, named by the row's `object` (her PENDING request, a fresh
 * PENDING request per cell where the call changes it, her grant, her passkey, a fresh session of hers, an
 * invite); `:username` is alice, `:entitlementId` is tok, `:hash` the policy in force. So an IDOR (another
 * person's id accepted) shows as a 2xx where the row says 403/404.
 *
 * Step-ups: every step-up-protected cell carries a well-formed but never-issued step-up (`$stepUp`, signed by the
 * caller's own passkey). The broker decides authorization BEFORE it verifies the step-up (requireAdmin, then
 * StepUpService.verifyFor in the admin routes; RequestQueries.stepUpBinding, which loads the request as the actor
 * and refuses who may not act, then StepUpService.verify in the request routes), so a caller who may not act gets
 * 403/404, and a caller who may gets the step-up refusal (401) and nothing changes: the authorization answer is
 * visible without spending a real ceremony, and the cell leaves no state behind for later cells. Where a route
 * verifies the step-up first (passkey removal), `realStepUp` names the callers who spend a real one. These
 * refusals count toward the step-up lockout: the suite raises STEP_UP_MAX_FAILURES for its own stack only.
 *
 * Validation before authorization: Nest runs the DTO ValidationPipe on the body before the handler, so a
 * malformed body is a 400 for every caller, admin check or not. Rows send bodies that pass validation so the
 * cell reaches the authorization decision; where the route's own body is the thing refused (a bogus WebAuthn
 * ceremony for login/enroll), the expected status is that 400/401 for everyone and the row says why.
 */
export type Role =
  'anonymous' | 'owner' | 'other' | 'outsider' | 'approver' | 'auditor' | 'admin' | 'suspended';
/** A column of the table: a person's role, or the workload (issue 21). */
export type Caller = Role | 'workload';

export const ROLES: Role[] = [
  'anonymous',
  'owner',
  'other',
  'outsider',
  'approver',
  'auditor',
  'admin',
  'suspended',
];
export const CALLERS: Caller[] = [...ROLES, 'workload'];

/** What `:id` (or `:inviteId`) is filled with. */
export type ObjectKind =
  'request' | 'fresh-request' | 'grant' | 'passkey' | 'fresh-session' | 'invite' | 'none';

export interface MatrixRow {
  object?: ObjectKind;
  /**
   * JSON body; '$stepUp' anywhere becomes a well-formed, never-issued step-up proof, '$request' alice's pending
   * request id.
   */
  body?: unknown;
  /** The workload's body where it differs from `body` (it activates with `{}`, never a step-up). */
  workloadBody?: unknown;
  /** A query string appended to the path (a GET that must answer at once). */
  query?: string;
  /**
   * For these callers '$stepUp' is a real, valid step-up of `action` (subject: the caller's username; params:
   * the body less stepUp, plus `params`, where '$id' is the row's object id).
   */
  realStepUp?: { action: string; params: Record<string, string>; callers: Role[] };
  /** Each signed-in cell uses a fresh login of that person (the call ends the session it runs on). */
  freshSession?: boolean;
  /** Expected status per caller. */
  expect: Record<Caller, number>;
  /** Why a cell is what it is, where that is not obvious. */
  why?: string;
}

type Cells = Record<Caller, number>;
/** One row, in CALLERS order; `workload` defaults to 403 (WORKLOAD_FORBIDDEN), as for every route not marked for it. */
const row = (
  a: number,
  owner: number,
  other: number,
  outsider: number,
  approver: number,
  auditor: number,
  admin: number,
  suspended: number,
  workload = 403,
): Cells => ({
  anonymous: a,
  owner,
  other,
  outsider,
  approver,
  auditor,
  admin,
  suspended,
  workload,
});
/** Public: the same answer for everyone, the workload's bearer ignored. */
const everyone = (status: number): Cells =>
  row(status, status, status, status, status, status, status, status, status);
/** Any signed-in, active person; 401 without a live session; 403 for the workload. */
const signedIn = (status: number): Cells => row(401, status, status, status, status, status, status, 401);
/** Admin only: 403 for other signed-in people and the workload. */
const adminOnly = (status: number): Cells => row(401, 403, 403, 403, 403, 403, status, 401);

export const AUTHZ_MATRIX: Record<string, MatrixRow> = {
  'GET /health/live': { expect: everyone(200) },
  'GET /health/ready': { expect: everyone(200) },
  'GET /.well-known/jwks.json': { expect: everyone(200) },
  'GET /.well-known/audit-jwks.json': { expect: everyone(200) },
  'GET /api/ssh/krl': { expect: everyone(200) },
  'GET /api/ssh/ca.pub': { expect: everyone(200) },
  'GET /api/docs': { expect: everyone(200) },
  'GET /api/docs.json': { expect: everyone(200) },
  'POST /api/introspect': {
    body: { token: 'x' },
    expect: everyone(401),
    why: 'needs client credentials, not a session',
  },
  'POST /api/auth/enroll/options': {
    body: { invite: 'A'.repeat(43) },
    expect: everyone(404),
    why: 'a well-formed invite token nobody issued is not found; a session changes nothing',
  },
  'POST /api/auth/enroll/verify': { body: {}, expect: everyone(400), why: 'body validation' },
  'POST /api/auth/login/options': { body: {}, expect: everyone(200) },
  'POST /api/auth/login/verify': { body: {}, expect: everyone(400), why: 'body validation' },
  'GET /metrics': {
    expect: everyone(401),
    why: 'takes its own bearer token (METRICS_TOKEN), never a session: no session caller reads it',
  },
  'GET /api/me': { expect: signedIn(200) },
  'GET /api/entitlements': { expect: signedIn(200) },
  'GET /api/events': { expect: signedIn(200) },
  'GET /api/me/notifications': { expect: signedIn(200) },
  'GET /api/me/unread': { expect: signedIn(200) },
  'POST /api/me/notifications/email': {
    body: { email: 'a@example.com', stepUp: '$stepUp' },
    expect: signedIn(401),
  },
  'POST /api/me/notifications/preferences': { body: { email: true }, expect: signedIn(200) },
  'POST /api/me/recovery-notices/:inviteId/acknowledge': {
    object: 'invite',
    body: {},
    expect: signedIn(404),
  },
  'GET /api/me/authenticators': { expect: signedIn(200) },
  'POST /api/me/authenticators/options': { body: { stepUp: '$stepUp' }, expect: signedIn(401) },
  'POST /api/me/authenticators/verify': { body: {}, expect: signedIn(400), why: 'body validation' },
  'POST /api/me/authenticators/:id/remove': {
    object: 'passkey',
    body: { stepUp: '$stepUp' },
    realStepUp: {
      action: 'authenticator.remove',
      params: { authenticatorId: '$id' },
      callers: ['other', 'outsider', 'approver', 'auditor', 'admin'],
    },
    expect: row(401, 401, 404, 404, 404, 404, 404, 401),
    why:
      'the step-up is verified before ownership: 401 without a valid one reveals nothing; with a valid one, ' +
      "someone else's passkey id is 404 (the owner keeps the bogus proof: her passkey must stay)",
  },
  'POST /api/step-up/challenge': {
    object: 'request',
    body: { action: 'approve', subjectId: '$request' },
    expect: row(401, 403, 404, 404, 200, 403, 403, 401),
    why:
      'refused as the approval would be: owner SELF_APPROVAL, outsider cannot see the request (404), auditor ' +
      'and admin see it but are not approvers of tok (403)',
  },
  'POST /api/requests': {
    body: { entitlementId: 'tok', durationSeconds: 600, justification: 'matrix' },
    expect: row(401, 201, 201, 403, 403, 403, 403, 401, 201),
    why: 'matrix-bot is in eligibleWorkloads of tok: it files its own request',
  },
  'GET /api/requests': { expect: signedIn(200) },
  'GET /api/requests/:id': {
    object: 'request',
    expect: row(401, 200, 404, 404, 200, 200, 200, 401, 404),
    why: "a workload sees only its own requests: alice's is not found, as for other non-owners",
  },
  'GET /api/requests/:id/wait': {
    object: 'request',
    query: '?state=APPROVED&timeout=1',
    expect: row(401, 200, 404, 404, 200, 200, 200, 401, 404),
    why: 'the request is not APPROVED, so who may see it is answered at once; the others as GET /api/requests/:id',
  },
  // Auditors and admins see every request (404 is for who cannot see it); only approvers of tok decide it.
  'POST /api/requests/:id/approve': {
    object: 'request',
    body: { stepUp: '$stepUp' },
    expect: row(401, 403, 404, 404, 401, 403, 403, 401),
  },
  'POST /api/requests/:id/deny': {
    object: 'request',
    body: { reason: 'no', stepUp: '$stepUp' },
    expect: row(401, 403, 404, 404, 401, 403, 403, 401),
  },
  'POST /api/requests/:id/activate': {
    object: 'request',
    body: { stepUp: '$stepUp' },
    workloadBody: {},
    expect: row(401, 401, 404, 404, 403, 403, 403, 401, 404),
    why:
      'only the requester activates; her step-up is checked before the state (pending: 409 after a real one); ' +
      "the workload (body {}) cannot see alice's request",
  },
  'POST /api/requests/:id/revoke': {
    object: 'request',
    body: { reason: 'x', stepUp: '$stepUp' },
    expect: row(401, 401, 404, 404, 401, 403, 401, 401),
    why: 'requester, approver or admin may revoke (step-up next, then the state); the auditor may not',
  },
  'POST /api/requests/:id/cancel': {
    object: 'fresh-request',
    body: {},
    expect: row(401, 200, 404, 404, 403, 403, 200, 401, 404),
    why:
      "an admin may cancel anyone's pending request (request-state.ts cancel: requester or admin); the workload " +
      "cannot see alice's",
  },
  'POST /api/requests/:id/extend': {
    object: 'request',
    body: { durationSeconds: 600 },
    expect: row(401, 422, 404, 404, 403, 403, 403, 401),
    why: 'only an eligible requester files an extension; of a pending request it is 422 (nothing to extend)',
  },
  'POST /api/requests/:id/review': {
    object: 'request',
    body: { comment: 'ok' },
    expect: row(401, 409, 404, 404, 409, 409, 409, 401),
    why: 'the state is checked before the actor: tok is not break-glass, so 409 for whoever can see it',
  },
  'GET /api/approvals/inbox': { expect: signedIn(200) },
  'GET /api/reviews': { expect: signedIn(200) },
  'GET /api/audit/events': { expect: row(401, 403, 403, 403, 403, 200, 200, 401) },
  'GET /api/audit/requests/:id/chain': {
    object: 'request',
    expect: row(401, 403, 403, 403, 403, 200, 200, 401),
  },
  'GET /api/audit/requests/:id/bundle': {
    object: 'request',
    expect: row(401, 403, 403, 403, 403, 200, 200, 401),
  },
  'POST /api/audit/checkpoints': {
    body: {},
    expect: row(401, 403, 403, 403, 403, 201, 201, 401),
    why: 'signs a checkpoint of the Merkle tree now (the same one when nothing moved)',
  },
  'GET /api/audit/checkpoint': {
    expect: row(401, 403, 403, 403, 403, 200, 200, 401),
    why: 'after the row above, a checkpoint exists',
  },
  'GET /api/audit/proofs/inclusion': {
    expect: row(401, 400, 400, 400, 400, 400, 400, 401),
    why: 'no seq and size given: the query is validated (400) before the role check, for every signed-in caller',
  },
  'GET /api/audit/proofs/consistency': {
    expect: row(401, 400, 400, 400, 400, 400, 400, 401),
    why: 'no from and to given: the query is validated (400) before the role check, for every signed-in caller',
  },
  'POST /api/audit/export': {
    body: { format: 'ndjson', stepUp: '$stepUp' },
    expect: row(401, 403, 403, 403, 403, 401, 403, 401),
    why: "exports are the auditor's, not the admin's (audit.controller.ts requireAuditor); then the step-up",
  },
  'POST /api/admin/invites': {
    body: { username: 'newbie', roles: [], stepUp: '$stepUp' },
    expect: adminOnly(401),
  },
  'GET /api/admin/invites': { expect: adminOnly(200) },
  'POST /api/admin/invites/:id/revoke': { object: 'invite', body: {}, expect: adminOnly(200) },
  'POST /api/admin/invites/:id/approve': {
    object: 'invite',
    body: { stepUp: '$stepUp' },
    expect: adminOnly(401),
  },
  'GET /api/admin/users': { expect: adminOnly(200) },
  'GET /api/admin/workloads': { expect: row(401, 403, 403, 403, 403, 200, 200, 401) },
  'GET /api/admin/users/:username': { expect: adminOnly(200) },
  'POST /api/admin/users/:username/authenticators/:id/disable': {
    object: 'passkey',
    body: { reason: 'lost', stepUp: '$stepUp' },
    expect: adminOnly(401),
  },
  'POST /api/admin/users/:username/sessions/:id/end': {
    object: 'fresh-session',
    body: {},
    expect: adminOnly(200),
  },
  'POST /api/admin/users/:username/status': {
    body: { status: 'suspended', reason: 'x', stepUp: '$stepUp' },
    expect: adminOnly(401),
  },
  'POST /api/admin/users/:username/lockouts/:entitlementId/unlock': {
    body: {},
    expect: adminOnly(404),
    why: 'alice is not locked out of tok: the admin is told there is no such lockout',
  },
  'POST /api/admin/users/:username/email': {
    body: { email: 'a@example.com', stepUp: '$stepUp' },
    expect: adminOnly(401),
  },
  'GET /api/admin/notifications': { expect: adminOnly(200) },
  'GET /api/admin/policies': { expect: adminOnly(200) },
  'GET /api/admin/policies/:hash': { expect: adminOnly(200) },
  'POST /api/admin/policies/reload': { body: { stepUp: '$stepUp' }, expect: adminOnly(401) },
  'GET /api/admin/grants': { expect: adminOnly(200) },
  'POST /api/admin/grants/:id/retry-revocation': {
    object: 'grant',
    body: { stepUp: '$stepUp' },
    expect: adminOnly(401),
  },
  'POST /api/auth/logout': { body: {}, freshSession: true, expect: signedIn(204) },
  // Last: the admin's cell ends every session of alice's.
  'POST /api/admin/users/:username/end-sessions': { body: {}, expect: adminOnly(200) },
};
