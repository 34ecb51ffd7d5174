import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import {
  DEFAULT_RECOVERY_COOLDOWN_SECONDS,
  findEntitlement,
  findWorkload,
  policyHash,
} from '../domain/policy.js';
import { parsePolicy } from './policy-parser.js';

const LIMITS = { hardMaxDurationSeconds: 8 * 60 * 60 };
const EXAMPLE = readFileSync(new URL('../../policies/example.yaml', import.meta.url), 'utf8');

describe('parsePolicy: the example policy', () => {
  const policy = parsePolicy([{ name: 'policies/example.yaml', text: EXAMPLE }], LIMITS);

  it('loads with its groups, connectors and entitlements', () => {
    expect(policy.groups).toEqual({
      approvers: ['admin', 'bob', 'dave'],
      engineers: ['admin', 'alice', 'carol'],
      oncall: ['admin', 'alice'],
    });
    expect(policy.connectors).toEqual({
      'api-token': { type: 'jwt', audience: 'https://api.example.com' },
      'demo-db': { type: 'postgres', urlEnv: 'DEMO_TARGET_DB_URL' },
    });
    expect(policy.entitlements.map((entitlement) => entitlement.id)).toEqual([
      'api-admin-token',
      'demo-db-read',
      'demo-db-write',
      'api-read-token',
      'demo-db-breakglass',
    ]);
  });

  it('applies the defaults and turns durations into seconds', () => {
    expect(findEntitlement(policy, 'demo-db-read')).toEqual({
      id: 'demo-db-read',
      title: 'Demo database, read-only',
      description: 'A database login that can read every table of the demo application, change none.',
      connector: 'demo-db',
      scope: { grantRoles: ['app_read'] },
      eligible: ['engineers'],
      maxDurationSeconds: 3600,
      requires: {
        justification: true,
        ticketPattern: '^(INC|CHG)-[0-9]+$',
        ticketHint: 'an incident or change number, like INC-1234 or CHG-1234',
      },
      approval: {
        approvals: 1,
        approverGroups: ['approvers'],
        pendingTtlSeconds: 3600,
        activationWindowSeconds: 900,
      },
      breakGlass: null,
      selfService: false,
      authenticator: { deviceBound: false, aaguids: null },
    });
    const breakGlass = findEntitlement(policy, 'demo-db-breakglass');
    expect(breakGlass?.approval).toBeNull();
    expect(breakGlass?.breakGlass).toEqual({ notify: ['approvers'], postReviewWithinSeconds: 86_400 });
    expect(breakGlass?.maxDurationSeconds).toBe(1800);
    expect(findEntitlement(policy, 'api-admin-token')?.scope).toEqual({
      scopes: ['admin:read', 'admin:write'],
    });
    expect(findEntitlement(policy, 'demo-db-write')?.approval?.approvals).toBe(2);
    expect(findEntitlement(policy, 'no-such-thing')).toBeUndefined();
    // Optional text is absent, not null, when not given: policies written before it keep their hashes.
    expect(Object.keys(findEntitlement(policy, 'api-read-token')!)).not.toContain('description');
    expect(Object.keys(findEntitlement(policy, 'api-read-token')!.requires)).not.toContain('ticketHint');
  });

  it('hashes to 64 hex characters, the same across key order, member order and comments', () => {
    const hash = policyHash(policy);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    const reordered = `
# the same policy, written differently
entitlements:
  - maxDuration: 1h
    approval: { approverGroups: [approvers], approvals: 1 }
    eligible: [engineers]
    scope: { scopes: ['admin:read', 'admin:write'] }
    connector: api-token
    title: Admin API, read/write token
    description: A bearer token for the admin API that can change accounts and settings.
    id: api-admin-token
  - { id: demo-db-read, title: 'Demo database, read-only', connector: demo-db, scope: { grantRoles: [app_read] },
      eligible: [engineers], maxDuration: 60m, approval: { approvals: 1, approverGroups: [approvers] },
      description: 'A database login that can read every table of the demo application, change none.',
      requires: { ticketHint: 'an incident or change number, like INC-1234 or CHG-1234',
                  ticketPattern: '^(INC|CHG)-[0-9]+$' } }
  - id: demo-db-write
    description: A database login that can read and change every table of the demo application.
    title: Demo database, read/write
    connector: demo-db
    scope: { grantRoles: [app_write] }
    eligible: [engineers]
    maxDuration: 1h
    approval: { approvals: 2, approverGroups: [approvers], activationWindow: 15m, pendingTtl: 1h }
  - { selfService: true, maxDuration: 900s, eligible: [engineers], scope: { scopes: ['admin:read'] },
      connector: api-token, title: 'Admin API, read-only token', id: api-read-token }
  - id: demo-db-breakglass
    title: Demo database, read/write (break-glass)
    description: Read/write access to the demo database at once, for an outage; reviewed afterwards.
    breakGlass: { postReviewWithin: 1d, notify: [approvers] }
    connector: demo-db
    scope: { grantRoles: [app_write] }
    eligible: [oncall]
    maxDuration: 30m
connectors:
  demo-db: { urlEnv: DEMO_TARGET_DB_URL, type: postgres }
  api-token: { audience: https://api.example.com, type: jwt }
groups:
  oncall: [admin, alice]
  approvers: [dave, bob, admin]
  engineers: [carol, alice, admin]
`;
    expect(policyHash(parsePolicy([{ name: 'reordered.yaml', text: reordered }], LIMITS))).toBe(hash);
  });

  it('hashes to the same value after a JSON round trip (how a stored version is read back)', () => {
    expect(policyHash(JSON.parse(JSON.stringify(policy)))).toBe(policyHash(policy));
  });

  it('hashes differently when anything that matters changes', () => {
    const changed = parsePolicy(
      [{ name: 'p.yaml', text: EXAMPLE.replace('maxDuration: 30m', 'maxDuration: 20m') }],
      LIMITS,
    );
    expect(policyHash(changed)).not.toBe(policyHash(policy));
  });
});

describe('parsePolicy: several files', () => {
  const people = {
    name: 'policies/10-people.yaml',
    text: 'groups:\n  devs: [alice, bob]\n  leads: [carol, dave]\n',
  };
  const access = {
    name: 'policies/20-access.yaml',
    text: [
      'connectors:',
      '  db: { type: postgres, urlEnv: DB_URL }',
      'entitlements:',
      '  - id: db-read',
      '    connector: db',
      '    scope: { grantRoles: [app_read] }',
      '    eligible: [devs]',
      '    maxDuration: 1h',
      '    approval: { approvals: 2, approverGroups: [leads] }',
      '',
    ].join('\n'),
  };

  it('merges into one policy', () => {
    const policy = parsePolicy([people, access], LIMITS);
    expect(Object.keys(policy.groups)).toEqual(['devs', 'leads']);
    expect(Object.keys(policy.connectors)).toEqual(['db']);
    expect(policy.entitlements.map((entitlement) => entitlement.id)).toEqual(['db-read']);
  });

  it('refuses a group, connector or entitlement defined in two files, naming both', () => {
    const again = {
      name: 'policies/30-again.yaml',
      text: [
        'groups:',
        '  leads: [erin]',
        'connectors:',
        '  db: { type: jwt, audience: x }',
        'entitlements:',
        '  - id: db-read',
        '    connector: db',
        '    scope: {}',
        '    eligible: [devs]',
        '    maxDuration: 1h',
        '    approval: { approvals: 1, approverGroups: [devs] }',
        '',
      ].join('\n'),
    };
    expect(() => parsePolicy([people, access, again], LIMITS)).toThrow(
      expect.objectContaining({
        problems: [
          {
            file: 'policies/30-again.yaml',
            line: 2,
            path: 'groups.leads',
            reason: 'group "leads" is defined twice: policies/10-people.yaml:3 and policies/30-again.yaml:2',
          },
          {
            file: 'policies/30-again.yaml',
            line: 4,
            path: 'connectors.db',
            reason: 'connector "db" is defined twice: policies/20-access.yaml:2 and policies/30-again.yaml:4',
          },
          {
            file: 'policies/30-again.yaml',
            line: 6,
            path: 'entitlements[0].id',
            reason:
              'entitlement "db-read" is defined twice: policies/20-access.yaml:4 and policies/30-again.yaml:6',
          },
        ],
      }),
    );
  });

  it('checks references across files only once every file is well-formed', () => {
    const broken = { name: 'policies/10-people.yaml', text: 'groups:\n  devs: [alice, bob\n' };
    expect(() => parsePolicy([broken, access], LIMITS)).toThrow(
      expect.objectContaining({ problems: [expect.objectContaining({ file: 'policies/10-people.yaml' })] }),
    );
  });
});

describe('parsePolicy: settings', () => {
  const people = { name: 'policies/10-people.yaml', text: 'groups:\n  devs: [alice]\n  leads: [carol]\n' };
  const access = {
    name: 'policies/20-access.yaml',
    text: `connectors:
  db: { type: postgres, urlEnv: DB_URL }
entitlements:
  - { id: db-read, connector: db, scope: {}, eligible: [devs], maxDuration: 1h,
      approval: { approvals: 1, approverGroups: [leads] } }
`,
  };

  it('leaves settings out when no file declares them, so existing hashes hold', () => {
    const policy = parsePolicy([people, access], LIMITS);
    expect(policy).not.toHaveProperty('settings');
  });

  it('reads settings.recoveryCooldown as a duration, and defaults it when settings is declared without it', () => {
    const withCooldown = { name: 'policies/30-settings.yaml', text: 'settings:\n  recoveryCooldown: 2h\n' };
    expect(parsePolicy([people, access, withCooldown], LIMITS).settings).toEqual({
      recoveryCooldownSeconds: 7200,
    });
    const empty = { name: 'policies/30-settings.yaml', text: 'settings: {}\n' };
    expect(parsePolicy([people, access, empty], LIMITS).settings).toEqual({
      recoveryCooldownSeconds: DEFAULT_RECOVERY_COOLDOWN_SECONDS,
    });
  });
});

describe('parsePolicy: workloads (issue 21)', () => {
  const people = {
    name: 'policies/10-people.yaml',
    text: 'groups:\n  devs: [alice]\n  leads: [carol, dave]\n  platform: [erin]\n',
  };
  const access = {
    name: 'policies/20-access.yaml',
    text: `connectors:
  db: { type: postgres, urlEnv: DB_URL }
entitlements:
  - id: db-migrate
    connector: db
    scope: {}
    eligible: [devs]
    eligibleWorkloads: [web-bot, deploy-bot, deploy-bot]
    maxDuration: 2h
    approval: { approvals: 1, approverGroups: [leads] }
  - id: db-short
    connector: db
    scope: {}
    eligible: [devs]
    eligibleWorkloads: [deploy-bot]
    maxDuration: 10m
    approval: { approvals: 1, approverGroups: [leads] }
  - id: db-own-cap
    connector: db
    scope: {}
    eligible: [devs]
    eligibleWorkloads: [deploy-bot]
    maxDuration: 2h
    workloadMaxDuration: 45m
    approval: { approvals: 1, approverGroups: [leads] }
  - id: db-people-only
    connector: db
    scope: {}
    eligible: [devs]
    maxDuration: 1h
    approval: { approvals: 1, approverGroups: [leads] }
`,
  };
  const bots = {
    name: 'policies/30-workloads.yaml',
    text: `workloads:
  - id: web-bot
    title: Web deploys
    issuer: https://token.actions.githubusercontent.com
    audience: jit-broker
    subject: 'repo:org/web:**'
    ownerGroup: platform
    jwksUri: https://token.actions.githubusercontent.com/.well-known/jwks
  - id: deploy-bot
    issuer: https://token.actions.githubusercontent.com
    audience: jit-broker
    subject: 'repo:org/app:ref:refs/heads/*'
    ownerGroup: platform
`,
  };

  it('normalises workloads (sorted by id, title defaulted, jwksUri only when given)', () => {
    const policy = parsePolicy([people, access, bots], LIMITS);
    expect(policy.workloads).toEqual([
      {
        id: 'deploy-bot',
        title: 'deploy-bot',
        issuer: 'https://token.actions.githubusercontent.com',
        audience: 'jit-broker',
        subject: 'repo:org/app:ref:refs/heads/*',
        ownerGroup: 'platform',
      },
      {
        id: 'web-bot',
        title: 'Web deploys',
        issuer: 'https://token.actions.githubusercontent.com',
        audience: 'jit-broker',
        subject: 'repo:org/web:**',
        ownerGroup: 'platform',
        jwksUri: 'https://token.actions.githubusercontent.com/.well-known/jwks',
      },
    ]);
    expect(Object.keys(findWorkload(policy, 'deploy-bot')!)).not.toContain('jwksUri');
    expect(findWorkload(policy, 'nope')).toBeUndefined();
  });

  it('normalises eligibleWorkloads as a sorted set with a workload cap of at most 15m by default', () => {
    const policy = parsePolicy([people, access, bots], LIMITS);
    const workloadFields = (id: string) => {
      const { eligibleWorkloads, workloadMaxDurationSeconds } = findEntitlement(policy, id)!;
      return { eligibleWorkloads, workloadMaxDurationSeconds };
    };
    expect(workloadFields('db-migrate')).toEqual({
      eligibleWorkloads: ['deploy-bot', 'web-bot'],
      workloadMaxDurationSeconds: 900,
    });
    expect(workloadFields('db-short').workloadMaxDurationSeconds).toBe(600);
    expect(workloadFields('db-own-cap').workloadMaxDurationSeconds).toBe(2700);
    const peopleOnly = findEntitlement(policy, 'db-people-only')!;
    expect(Object.keys(peopleOnly)).not.toContain('eligibleWorkloads');
    expect(Object.keys(peopleOnly)).not.toContain('workloadMaxDurationSeconds');
  });

  it('leaves workloads out when no file declares them, and keeps them (empty) when one does', () => {
    const withoutBots = {
      name: access.name,
      text: access.text.replace(/ {4}(eligibleWorkloads|workloadMaxDuration): .*\n/g, ''),
    };
    expect(parsePolicy([people, withoutBots], LIMITS)).not.toHaveProperty('workloads');
    const empty = { name: 'policies/30-workloads.yaml', text: 'workloads: []\n' };
    expect(parsePolicy([people, withoutBots, empty], LIMITS).workloads).toEqual([]);
  });

  it('keeps the hash of a policy without workloads (the example policy, pinned)', () => {
    const policy = parsePolicy([{ name: 'policies/example.yaml', text: EXAMPLE }], LIMITS);
    expect(policyHash(policy)).toBe('111fa6d3f284345db4fe8975d991a3b3dde5c706e4d68a1639c8ca6d474905d9');
  });

  it('parses the workload-cli e2e fixture with its local issuer', () => {
    const fixture = new URL('../../test/fixtures/policies/workload-cli/workload-cli.yaml', import.meta.url);
    const text = readFileSync(fixture, 'utf8').replaceAll('${ISSUER}', 'http://127.0.0.1:45678');
    const policy = parsePolicy([{ name: 'workload-cli.yaml', text }], LIMITS);
    expect(findWorkload(policy, 'deploy-bot')).toEqual({
      id: 'deploy-bot',
      title: 'Deploy pipeline',
      issuer: 'http://127.0.0.1:45678',
      audience: 'jit-broker',
      subject: 'repo:org/app:ref:refs/heads/*',
      ownerGroup: 'platform',
    });
    expect(findEntitlement(policy, 'db-deploy')).toMatchObject({
      eligibleWorkloads: ['deploy-bot'],
      workloadMaxDurationSeconds: 900,
    });
  });
});
