import { beforeAll, describe, expect, it } from '@jest/globals';
import { auditKey, buildScenario, ORIGIN, RP_ID, type Scenario } from '../../test/support/audit-chain.js';
import {
  signRequestBundle,
  type BundlePolicyVersion,
  type BundleRequest,
  type RequestBundle,
} from './bundle.js';
import { canonicalDigest } from './manifest.js';
import { verifyBundle, verifyExport } from './verify.js';

const key = auditKey();
const policyContent = {
  groups: { 'dba-approvers': ['alice', 'bob'] },
  entitlements: [{ id: 'prod-db-write' }],
};
const policyHash = canonicalDigest(policyContent);
let scenario: Scenario;
let bundle: RequestBundle;

type Parts = Pick<RequestBundle, 'requestId' | 'request' | 'policyVersion' | 'grants' | 'events'> & {
  policyVersion: BundlePolicyVersion;
};

function parts(overrides: Partial<Omit<Parts, 'requestId'>> = {}): Parts {
  const { approved } = scenario;
  const request: BundleRequest = {
    ...approved,
    approvalsRequired: 2,
    state: 'ENDED',
    createdAt: '2026-03-01T09:00:02.000Z',
    pendingUntil: '2026-03-01T10:00:02.000Z',
    decidedAt: '2026-03-01T09:00:06.000Z',
    activateBy: '2026-03-01T09:15:06.000Z',
    activatedAt: '2026-03-01T09:00:08.000Z',
    endsAt: '2026-03-01T10:00:08.000Z',
    endedAt: '2026-03-01T10:00:08.412Z',
    endReason: 'expired',
  };
  return {
    requestId: approved.id,
    request,
    policyVersion: {
      hash: policyHash,
      content: policyContent,
      loadedAt: '2026-03-01T08:00:00.000Z',
      loadedBy: 'system',
    },
    grants: [
      {
        id: '0194f000-0000-7000-8000-000000000001',
        connector: 'postgres-prod',
        connectorType: 'postgres',
        fingerprint: 'sha256:0f1e2d',
        issuedAt: '2026-03-01T09:00:08.000Z',
        notAfter: '2026-03-01T10:00:08.000Z',
        state: 'REVOKED',
        revokedAt: '2026-03-01T10:00:08.412Z',
        revokeAttempts: 1,
        revocationLagMs: 412,
      },
    ],
    events: scenario.chain.events.filter((event) => event.requestId === approved.id),
    ...overrides,
  };
}

/** A deep copy made the way a file would be read back. */
function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

async function sign(overrides: Parameters<typeof parts>[0] = {}): Promise<RequestBundle> {
  return signRequestBundle(
    parts(overrides),
    { ...scenario.chain.head, exportedAt: '2026-03-02T10:00:00.000Z' },
    { signManifest: key.signManifest, exporter: 'auditor-1', rpId: RP_ID, origins: [ORIGIN] },
  );
}

beforeAll(async () => {
  scenario = buildScenario(undefined, { policyHash });
  bundle = await sign();
});

describe('request bundle', () => {
  it('verifies: events, approvals with their evidence, request, policy version, grants, signature', async () => {
    expect(bundle.manifest).toMatchObject({
      format: 'bundle',
      filters: { requestId: scenario.approved.id },
      count: 6,
    });
    expect(await verifyBundle(bundle, { jwks: key.jwks })).toMatchObject({
      ok: true,
      format: 'bundle',
      counts: { events: 6, approvals: 2, assertions: 3, requests: 1 },
      keyPinned: true,
    });
    // verifyExport recognises a bundle file too.
    expect(await verifyExport(JSON.stringify(bundle, null, 2), { jwks: key.jwks })).toMatchObject({
      ok: true,
    });
  });

  it('catches an edited request, policy version or grant (attachmentsDigest)', async () => {
    const edited = clone(bundle);
    edited.request.justification = 'nothing to see';
    expect(await verifyBundle(edited, { jwks: key.jwks })).toMatchObject({
      ok: false,
      seq: null,
      reason: /attachmentsDigest/,
    });
    const grant = clone(bundle);
    grant.grants[0].revocationLagMs = 0;
    expect(await verifyBundle(grant, { jwks: key.jwks })).toMatchObject({
      ok: false,
      reason: /attachmentsDigest/,
    });
  });

  it('catches a signed bundle whose request is not what request.created committed to', async () => {
    const request = { ...parts().request, durationSeconds: 28_800 };
    expect(await verifyBundle(await sign({ request }), { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 2,
      reason: 'bundle.request differs from the subject its request.created event committed to',
    });
  });

  it('catches a policy version that is not the one the request was filed under, or does not hash to its hash', async () => {
    const policyVersion = parts().policyVersion;
    const other = await sign({ policyVersion: { ...policyVersion, hash: 'b'.repeat(64) } });
    expect(await verifyBundle(other, { jwks: key.jwks })).toMatchObject({
      ok: false,
      reason: /not the version the request was filed under/,
    });
    const edited = await sign({
      policyVersion: { ...policyVersion, content: { ...policyContent, groups: {} } },
    });
    expect(await verifyBundle(edited, { jwks: key.jwks })).toMatchObject({
      ok: false,
      reason: /does not hash to its hash/,
    });
  });

  it('catches an event of another request, and a removed event', async () => {
    const events = [...parts().events];
    events.splice(2, 0, scenario.chain.events[3]);
    expect(await verifyBundle(await sign({ events }), { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 4,
      reason: "the event does not match the export's filter requestId",
    });
    const removed = clone(bundle);
    removed.events.splice(1, 1);
    expect(await verifyBundle(removed, { jwks: key.jwks })).toMatchObject({
      ok: false,
      seq: null,
      reason: /counts 6/,
    });
  });

  it('catches a bundle without the request.created event', async () => {
    const events = parts().events.slice(1);
    expect(await verifyBundle(await sign({ events }), { jwks: key.jwks })).toMatchObject({
      ok: false,
      reason: 'the bundle holds no request.created event with the request subject',
    });
  });
});
