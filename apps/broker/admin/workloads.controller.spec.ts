import { describe, expect, it } from '@jest/globals';
import type { Policy } from '../../../libs/domain/policy.js';
import { workloadsOf } from './workloads.controller.js';

const entitlement = (id: string, eligibleWorkloads?: string[]) => ({
  id,
  title: id,
  connector: 'api-token',
  scope: {},
  eligible: [],
  maxDurationSeconds: 3600,
  requires: { justification: true, ticketPattern: null },
  approval: {
    approvals: 1,
    approverGroups: ['approvers'],
    pendingTtlSeconds: 3600,
    activationWindowSeconds: 900,
  },
  breakGlass: null,
  selfService: false,
  authenticator: { deviceBound: false, aaguids: null },
  ...(eligibleWorkloads ? { eligibleWorkloads } : {}),
});

describe('workloadsOf', () => {
  it('is empty for a policy without workloads', () => {
    expect(workloadsOf({ groups: {}, connectors: {}, entitlements: [entitlement('a')] })).toEqual([]);
  });

  it('lists each workload with the entitlements that name it, and only the fields the page shows', () => {
    const policy = {
      groups: { platform: ['carol'] },
      connectors: {},
      entitlements: [
        entitlement('db-deploy', ['deploy-bot']),
        entitlement('other'),
        entitlement('both', ['deploy-bot', 'nightly']),
      ],
      workloads: [
        {
          id: 'deploy-bot',
          title: 'Deploy pipeline',
          issuer: 'https://token.actions.example.com',
          audience: 'jit-broker',
          subject: 'repo:org/app:ref:refs/heads/main',
          ownerGroup: 'platform',
          jwksUri: 'https://keys.example.com/jwks.json',
        },
        {
          id: 'nightly',
          title: 'nightly',
          issuer: 'https://ci.example.com',
          audience: 'jit',
          subject: 'job:*',
          ownerGroup: 'platform',
        },
      ],
    } satisfies Policy;
    expect(workloadsOf(policy)).toEqual([
      {
        id: 'deploy-bot',
        title: 'Deploy pipeline',
        issuer: 'https://token.actions.example.com',
        audience: 'jit-broker',
        subject: 'repo:org/app:ref:refs/heads/main',
        ownerGroup: 'platform',
        entitlements: ['db-deploy', 'both'],
      },
      {
        id: 'nightly',
        title: 'nightly',
        issuer: 'https://ci.example.com',
        audience: 'jit',
        subject: 'job:*',
        ownerGroup: 'platform',
        entitlements: ['both'],
      },
    ]);
  });
});
