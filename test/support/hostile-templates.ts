// Shared by the hostile-input suites (test/e2e/hostile-input-sweep.e2e.ts, test/security/hostile-properties.e2e.ts):
// which routes are public, and a plausible body per POST route that hostile bodies are mutations of.

export const SOME_UUID = '0190f3a2-7c1e-7b3a-9d4e-5f6a7b8c9d0e';

/** Routes that answer without a session; the rest are called as the person whose role reaches them. */
export const PUBLIC_ROUTES = new Set([
  'POST /api/auth/enroll/options',
  'POST /api/auth/enroll/verify',
  'POST /api/auth/login/options',
  'POST /api/auth/login/verify',
  'GET /health/live',
  'GET /health/ready',
  'GET /.well-known/jwks.json',
  'GET /.well-known/audit-jwks.json',
  'POST /api/introspect',
  'GET /api/ssh/krl',
  'GET /api/ssh/ca.pub',
  'GET /metrics',
]);

export const toBase64Url = (text: string | Uint8Array) => Buffer.from(text).toString('base64url');

/** An AuthenticationResponseJSON that passes the edge's shape checks but answers no real challenge. */
export const SHAPED_ASSERTION = {
  id: 'AAAA',
  rawId: 'AAAA',
  type: 'public-key',
  response: {
    clientDataJSON: toBase64Url('{"type":"webauthn.get"}'),
    authenticatorData: 'AAAA',
    signature: 'AAAA',
    userHandle: 'AAAA',
  },
  clientExtensionResults: {},
};
export const SHAPED_REGISTRATION = {
  id: 'AAAA',
  rawId: 'AAAA',
  type: 'public-key',
  response: { clientDataJSON: toBase64Url('{"type":"webauthn.create"}'), attestationObject: 'AAAA' },
  clientExtensionResults: {},
};
export const FAKE_STEP_UP = { challengeId: SOME_UUID, response: SHAPED_ASSERTION };

/** A plausible body per route; hostile bodies are mutations of it. A POST route without one fails the test. */
export function templates(invite: string): Record<string, Record<string, unknown>> {
  const request = { entitlementId: 'api-admin-token', durationSeconds: 600, justification: 'sweep' };
  return {
    'POST /api/auth/enroll/options': { invite },
    'POST /api/auth/enroll/verify': { invite, response: SHAPED_REGISTRATION },
    'POST /api/auth/login/options': {},
    'POST /api/auth/login/verify': { response: SHAPED_ASSERTION },
    'POST /api/auth/logout': {},
    'POST /api/audit/checkpoints': {},
    'POST /api/step-up/challenge': {
      action: 'invite.create',
      subjectId: 'newcomer',
      params: { username: 'newcomer', roles: [] },
    },
    'POST /api/me/authenticators/options': { stepUp: FAKE_STEP_UP },
    'POST /api/me/authenticators/verify': { response: SHAPED_REGISTRATION, name: 'key' },
    'POST /api/me/authenticators/:id/remove': { stepUp: FAKE_STEP_UP },
    'POST /api/admin/invites': { username: 'newcomer', displayName: 'New', roles: [], stepUp: FAKE_STEP_UP },
    'POST /api/admin/invites/:id/approve': { stepUp: FAKE_STEP_UP },
    'POST /api/admin/invites/:id/revoke': {},
    'POST /api/admin/grants/:id/retry-revocation': { stepUp: FAKE_STEP_UP },
    'POST /api/me/recovery-notices/:inviteId/acknowledge': {},
    'POST /api/admin/users/:username/end-sessions': {},
    'POST /api/admin/users/:username/sessions/:id/end': {},
    'POST /api/admin/users/:username/authenticators/:id/disable': { reason: 'sweep', stepUp: FAKE_STEP_UP },
    'POST /api/admin/users/:username/status': { status: 'suspended', reason: 'sweep', stepUp: FAKE_STEP_UP },
    'POST /api/admin/users/:username/lockouts/:entitlementId/unlock': {},
    'POST /api/admin/users/:username/email': { email: 'sweep@example.test', stepUp: FAKE_STEP_UP },
    'POST /api/me/notifications/email': { email: 'sweep@example.test', stepUp: FAKE_STEP_UP },
    'POST /api/me/notifications/preferences': { email: false },
    'POST /api/admin/policies/reload': { stepUp: FAKE_STEP_UP },
    'POST /api/requests': { ...request, ticket: 'INC-1', stepUp: FAKE_STEP_UP },
    'POST /api/requests/:id/approve': { comment: 'ok', stepUp: FAKE_STEP_UP },
    'POST /api/requests/:id/deny': { reason: 'no', stepUp: FAKE_STEP_UP },
    'POST /api/requests/:id/activate': { stepUp: FAKE_STEP_UP },
    'POST /api/requests/:id/cancel': { reason: 'sweep' },
    'POST /api/requests/:id/revoke': { reason: 'sweep', stepUp: FAKE_STEP_UP },
    'POST /api/requests/:id/extend': { durationSeconds: 600, justification: 'more', ticket: 'INC-2' },
    'POST /api/requests/:id/review': { comment: 'reviewed' },
    'POST /api/audit/export': { format: 'ndjson', filters: { actorId: 'system' }, stepUp: FAKE_STEP_UP },
    'POST /api/introspect': { token: 'a.b.c', token_type_hint: 'access_token' },
  };
}
