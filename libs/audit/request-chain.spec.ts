import { describe, expect, it } from '@jest/globals';
import {
  auditKey,
  buildScenario,
  ORIGIN,
  RP_ID,
  stepUpEvidence,
  type Scenario,
} from '../../test/support/audit-chain.js';
import { subjectDigest } from '../webauthn/step-up-binding.js';
import { signRequestBundle, type RequestBundle } from './bundle.js';
import { requestChain, type ChainContext } from './request-chain.js';

const key = auditKey();

async function bundleOf(scenario: Scenario): Promise<RequestBundle> {
  const { approved } = scenario;
  return signRequestBundle(
    {
      requestId: approved.id,
      request: {
        ...approved,
        approvalsRequired: 2,
        state: 'ENDED',
        createdAt: '2026-03-01T09:00:02.000Z',
        pendingUntil: null,
        decidedAt: null,
        activateBy: null,
        activatedAt: null,
        endsAt: null,
        endedAt: null,
        endReason: null,
      },
      policyVersion: null,
      grants: [],
      events: scenario.chain.events.filter((event) => event.requestId === approved.id),
    },
    { ...scenario.chain.head, exportedAt: '2026-03-02T10:00:00.000Z' },
    { signManifest: key.signManifest, exporter: 'auditor-1', rpId: RP_ID, origins: [ORIGIN] },
  );
}

function contextFor(scenario: Scenario, origins: string[] = [ORIGIN]): ChainContext {
  const { requester, alice, bob } = scenario;
  return {
    relyingParty: { rpId: RP_ID, origins },
    usernames: new Map([requester, alice, bob].map((person) => [person.userId, person.username])),
    authenticatorNames: new Map([[alice.credentialId, 'alice’s laptop']]),
  };
}

describe('requestChain', () => {
  it('lists the steps in order with names, and verifies every genuine binding', async () => {
    const scenario = buildScenario();
    const chain = requestChain(await bundleOf(scenario), contextFor(scenario));
    expect(chain.request.requester).toBe('carol');
    expect(chain.steps.map((step) => [step.kind, step.actor])).toEqual([
      ['requested', 'carol'],
      ['approval', 'alice'],
      ['approval', 'bob'],
      ['approved', 'bob'],
      ['activated', 'carol'],
      ['credential-revoked', 'system'],
    ]);
    const [requested, first, second, , activated, revoked] = chain.steps;
    expect(requested.details).toMatchObject({ ticket: 'CHG-7', policyHash: scenario.approved.policyHash });
    expect(requested.binding).toBeNull();
    expect(first).toMatchObject({
      comment: 'ok, "looks fine", go',
      binding: { verified: true, reason: null, authenticatorName: 'alice’s laptop' },
    });
    expect(second.binding).toMatchObject({ verified: true, credentialId: scenario.bob.credentialId });
    expect(activated.binding?.verified).toBe(true);
    expect(revoked.details).toEqual({ reason: 'expired', lagMs: 412 });
  });

  it('does not verify an approval whose assertion is another person’s', async () => {
    const scenario = buildScenario((input, index, built) =>
      index === 2
        ? {
            ...input,
            data: {
              ...input.data,
              evidence: stepUpEvidence(built.bob, {
                action: 'approve',
                subjectId: built.approved.id,
                subjectDigest: subjectDigest(built.approved),
              }),
            },
          }
        : input,
    );
    const chain = requestChain(await bundleOf(scenario), contextFor(scenario));
    expect(chain.steps[1].binding).toMatchObject({
      verified: false,
      reason: "the assertion is not the acting person's",
    });
    expect(chain.steps[2].binding?.verified).toBe(true);
  });

  it('does not verify an approval for another request, nor assertions from an origin not the broker’s', async () => {
    const scenario = buildScenario((input, index, built) =>
      index === 2
        ? {
            ...input,
            data: {
              ...input.data,
              evidence: stepUpEvidence(built.alice, {
                action: 'approve',
                subjectId: built.denied.id,
                subjectDigest: subjectDigest(built.denied),
              }),
            },
          }
        : input,
    );
    const bundle = await bundleOf(scenario);
    expect(requestChain(bundle, contextFor(scenario)).steps[1].binding).toMatchObject({
      verified: false,
      reason: 'the assertion is for another request',
    });
    const elsewhere = requestChain(bundle, contextFor(scenario, ['https://elsewhere.example']));
    expect(elsewhere.steps[2].binding).toMatchObject({
      verified: false,
      reason: expect.stringMatching(/origin/),
    });
  });
});
