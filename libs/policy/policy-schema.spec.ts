import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { policyWarnings } from './policy-checks.js';
import { PolicyError, type PolicyProblem } from './policy-error.js';
import { parsePolicy } from './policy-parser.js';
import type { PolicyFile } from './yaml-lines.js';

const LIMITS = { hardMaxDurationSeconds: 8 * 60 * 60 };
const EXAMPLE = readFileSync(new URL('../../policies/example.yaml', import.meta.url), 'utf8');

function problemsOf(files: PolicyFile[]): PolicyProblem[] {
  try {
    parsePolicy(files, LIMITS);
  } catch (error) {
    if (error instanceof PolicyError) return error.problems;
    throw error;
  }
  throw new Error('the policy was accepted');
}

// Seven lines, so the entitlement of every fixture below starts on line 8.
const HEADER = `groups:
  devs: [alice, bob]
  leads: [carol, dave]
  solo: [erin]
connectors:
  db: { type: postgres, urlEnv: DB_URL }
entitlements:
`;
const USERNAME_RULE =
  'lowercase letters, digits, ".", "_" and "-", starting with a letter or digit, at most 64 characters';
const ID_RULE = 'lowercase letters, digits and "-", starting with a letter or digit, at most 64 characters';

describe('parsePolicy: invalid policies are refused with file, line and reason', () => {
  // [what, YAML, line, reason]: each fixture has exactly one problem.
  const fixtures: [string, string, number | null, string][] = [
    [
      'YAML syntax error',
      'groups:\n  devs: [alice]\n  devs: [bob]\n',
      3,
      'YAML syntax error: Map keys must be unique',
    ],
    [
      'unclosed flow sequence',
      'groups:\n  devs: [alice, bob\nconnectors: {}\n',
      3,
      'YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ],
    [
      'empty file',
      '# nothing but a comment\n',
      null,
      'the file is empty; expected a mapping with groups, connectors and/or entitlements',
    ],
    ['top level is a list', '- alice\n- bob\n', 1, 'the document must be a mapping, not a list'],
    ['unknown top-level key', 'groups:\n  devs: [alice]\nagents: {}\n', 3, 'unknown top-level key "agents"'],
    [
      'workloads as a mapping (it is a list)',
      'groups:\n  devs: [alice]\nworkloads: {}\n',
      3,
      'workloads must be a list, not a mapping',
    ],
    [
      'invalid username',
      'groups:\n  devs:\n    - alice\n    - Bob\n',
      4,
      `groups.devs[1] "Bob" is not a valid username (${USERNAME_RULE})`,
    ],
    [
      'invalid group name',
      'groups:\n  devs: [alice]\n  Dev_Team: [bob]\n',
      3,
      `groups key "Dev_Team" is not a valid name (${ID_RULE})`,
    ],
    ['group is not a list', 'groups:\n  devs: alice\n', 2, 'groups.devs must be a list, not a string'],
    [
      'unknown connector type',
      'connectors:\n  db: { type: mysql, urlEnv: DB_URL }\n',
      2,
      'connectors.db.type must be one of jwt, postgres, ssh, webhook',
    ],
    [
      'connector without a type',
      'connectors:\n  db: { urlEnv: DB_URL }\n',
      2,
      'connectors.db.type is required, one of jwt, postgres, ssh, webhook',
    ],
    [
      'unresolved alias (found only when building values, so no line)',
      'groups:\n  devs: &devs [alice]\n  leads: *lead\n',
      null,
      'YAML error: Unresolved alias (the anchor must be set before the alias): lead',
    ],
    [
      'unknown connector key',
      'connectors:\n  db:\n    type: postgres\n    urlEnv: DB_URL\n    password: hunter2\n',
      5,
      'unknown key "password" in connectors.db',
    ],
    [
      'invalid environment variable name',
      'connectors:\n  db: { type: postgres, urlEnv: postgres://admin@db/app }\n',
      2,
      'connectors.db.urlEnv "postgres://admin@db/app" is not a valid environment variable name (A-Z, 0-9 and "_")',
    ],
    [
      'webhook url',
      'connectors:\n  hook:\n    type: webhook\n    url: ftp://example.com/hook\n    secretEnv: HOOK_SECRET\n',
      4,
      'connectors.hook.url must be an http(s) URL',
    ],
    [
      'missing required key',
      `${HEADER}  - id: e1\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      8,
      'entitlements[0].connector is required',
    ],
    [
      'invalid entitlement id',
      `${HEADER}  - id: Prod_DB\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      8,
      `entitlements[0].id "Prod_DB" is not a valid id (${ID_RULE})`,
    ],
    [
      'unknown entitlement key',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads], ttl: 1h }\n`,
      13,
      'unknown key "ttl" in entitlements[0].approval',
    ],
    [
      'malformed duration',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1x\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      12,
      'entitlements[0].maxDuration "1x" is not a positive duration like "90s", "15m", "1h30m" or "2d"',
    ],
    [
      'duration as a number',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 3600\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      12,
      'entitlements[0].maxDuration must be a duration string like "1h"',
    ],
    [
      'approvals not a number',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval:\n      approvals: two\n      approverGroups: [leads]\n`,
      14,
      'entitlements[0].approval.approvals must be a whole number, not a string',
    ],
    [
      'empty eligible list',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: []\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      11,
      'entitlements[0].eligible must list at least one group',
    ],
    [
      'scope with .inf',
      `${HEADER}  - id: e1\n    connector: db\n    scope:\n      grantRoles: [app]\n      limit: .inf\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      12,
      'entitlements[0].scope.limit must be a finite number',
    ],
    [
      'scope with a __proto__ key',
      `${HEADER}  - id: e1\n    connector: db\n    scope: { __proto__: { admin: true } }\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      10,
      'entitlements[0].scope.__proto__ is a reserved key',
    ],
    [
      'scope missing',
      `${HEADER}  - id: e1\n    connector: db\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      8,
      'entitlements[0].scope is required',
    ],
    [
      'group names are looked up as own properties only',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [constructor]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      11,
      'entitlement "e1" lists unknown group "constructor" in eligible',
    ],
    [
      'unknown connector',
      `${HEADER}  - id: e1\n    connector: nope\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      9,
      'entitlement "e1" uses connector "nope", which is not defined under connectors',
    ],
    [
      'unknown eligible group',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible:\n      - devs\n      - ops\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      13,
      'entitlement "e1" lists unknown group "ops" in eligible',
    ],
    [
      'unknown approver group',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval:\n      approvals: 1\n      approverGroups: [dbas]\n`,
      15,
      'entitlement "e1" lists unknown group "dbas" in approval.approverGroups',
    ],
    [
      'unknown notify group',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 30m\n    breakGlass:\n      notify: [security]\n      postReviewWithin: 24h\n`,
      14,
      'entitlement "e1" lists unknown group "security" in breakGlass.notify',
    ],
    [
      'no approval',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n`,
      8,
      'entitlement "e1" needs at least 1 approval unless it declares breakGlass or selfService: true',
    ],
    [
      'zero approvals',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval:\n      approvals: 0\n      approverGroups: [leads]\n`,
      14,
      'entitlement "e1" needs at least 1 approval unless it declares breakGlass or selfService: true',
    ],
    [
      'self-service and break-glass',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    breakGlass: { notify: [leads], postReviewWithin: 24h }\n    selfService: true\n`,
      14,
      'entitlement "e1" cannot be both selfService and breakGlass',
    ],
    [
      'approval and break-glass',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n    breakGlass: { notify: [leads], postReviewWithin: 24h }\n`,
      13,
      'entitlement "e1" declares both approval and breakGlass; break-glass activates without approval',
    ],
    [
      'approval and self-service',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n    selfService: true\n`,
      13,
      'entitlement "e1" declares both approval and selfService; self-service activates without approval',
    ],
    [
      'fewer approvers than approvals',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 4, approverGroups: [leads, solo] }\n`,
      13,
      'entitlement "e1" requires 4 approvals but group(s) leads, solo have only 3 approvers',
    ],
    [
      'quorum lost when the requester is an approver',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs, leads]\n    maxDuration: 1h\n    approval:\n      approvals: 2\n      approverGroups: [leads]\n`,
      14,
      'entitlement "e1" requires 2 approvals but group(s) leads have only 1 approver other than requester "carol"',
    ],
    [
      'above the hard cap',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 9h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      12,
      'entitlement "e1" maxDuration 9h exceeds the hard cap of 8h',
    ],
    [
      'self-service above its cap',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h30m\n    selfService: true\n`,
      12,
      'self-service entitlement "e1" maxDuration 1h30m exceeds the self-service cap of 1h',
    ],
    [
      'break-glass above its cap',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 2h\n    breakGlass: { notify: [leads], postReviewWithin: 24h }\n`,
      12,
      'break-glass entitlement "e1" maxDuration 2h exceeds the break-glass cap of 1h',
    ],
    [
      'invalid ticket pattern',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    requires: { ticketPattern: '^(INC-[0-9]+$' }\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      13,
      'entitlement "e1" ticketPattern "^(INC-[0-9]+$" is not a valid regular expression',
    ],
    [
      'a title with a bidirectional override (shown to approvers)',
      `${HEADER}  - id: e1\n    title: "Read-only \\u202Eexe.txt"\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      9,
      'entitlements[0].title must be plain text: it contains a bidirectional control character (U+202E)',
    ],
    [
      'a title with a C1 control',
      `${HEADER}  - id: e1\n    title: "Read\\x9bonly"\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      9,
      'entitlements[0].title must be plain text: it contains a control character (U+009B)',
    ],
    [
      'a title with a line break',
      `${HEADER}  - id: e1\n    title: "Read\\nonly"\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      9,
      'entitlements[0].title must be plain text: it contains a line break or tab (U+000A), which this single-line field does not take',
    ],
    [
      'a ticket pattern with U+0000',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    requires: { ticketPattern: "^INC\\0" }\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      13,
      'entitlements[0].requires.ticketPattern must be plain text: it contains NUL (U+0000)',
    ],
    [
      'a scope value with a bidirectional isolate',
      `${HEADER}  - id: e1\n    connector: db\n    scope: { grantRoles: ["app\\u2066_admin"] }\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      10,
      'entitlements[0].scope.grantRoles[0] must be plain text: it contains a bidirectional control character (U+2066)',
    ],
    [
      'a jwt audience with a C1 control',
      'connectors:\n  api: { type: jwt, audience: "https://api\\x85.example" }\n',
      2,
      'connectors.api.audience must be plain text: it contains a control character (U+0085)',
    ],
    [
      'duplicate entitlement id',
      `${HEADER}  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`,
      14,
      'entitlement "e1" is defined twice: p.yaml:8 and p.yaml:14',
    ],
  ];

  it.each(fixtures)('%s', (_what, text, line, reason) => {
    const problems = problemsOf([{ name: 'p.yaml', text }]);
    expect(
      problems.map((problem) => ({ file: problem.file, line: problem.line, reason: problem.reason })),
    ).toEqual([{ file: 'p.yaml', line, reason }]);
  });

  it('names the YAML path of the node', () => {
    const [problem] = problemsOf([
      { name: 'p.yaml', text: fixtures.find(([what]) => what === 'approvals not a number')![1] },
    ]);
    expect(problem.path).toBe('entitlements[0].approval.approvals');
  });

  it('reports every problem at once, and the message lists each as file:line: reason', () => {
    const text = `${HEADER}  - id: e1\n    connector: nope\n    scope: {}\n    eligible: [devs]\n    maxDuration: 9h\n    approval: { approvals: 1, approverGroups: [leads] }\n`;
    let caught: unknown;
    try {
      parsePolicy([{ name: 'policies/p.yaml', text }], LIMITS);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(PolicyError);
    expect(caught).toBeInstanceOf(DomainError);
    expect((caught as PolicyError).code).toBe(ErrorCode.POLICY_INVALID);
    expect((caught as PolicyError).details).toEqual((caught as PolicyError).problems);
    expect((caught as PolicyError).message).toBe(
      [
        'invalid policy:',
        'policies/p.yaml:9: entitlement "e1" uses connector "nope", which is not defined under connectors',
        'policies/p.yaml:12: entitlement "e1" maxDuration 9h exceeds the hard cap of 8h',
      ].join('\n'),
    );
  });

  it('honours a lower configured hard cap', () => {
    const text = EXAMPLE;
    expect(() => parsePolicy([{ name: 'p.yaml', text }], { hardMaxDurationSeconds: 45 * 60 })).toThrow(
      'entitlement "api-admin-token" maxDuration 1h exceeds the hard cap of 45m',
    );
  });

  it('reads the YAML 1.2 core schema even under a %YAML 1.1 directive', () => {
    const text = `%YAML 1.1\n---\n${HEADER}  - id: e1\n    connector: db\n    scope: { on: yes }\n    eligible: [devs]\n    maxDuration: 1h\n    approval: { approvals: 1, approverGroups: [leads] }\n`;
    const [entitlement] = parsePolicy([{ name: 'p.yaml', text }], LIMITS).entitlements;
    expect(entitlement.id).toBe('e1');
    expect(entitlement.scope).toEqual({ on: 'yes' });
  });

  it('refuses an empty list of files', () => {
    expect(() => parsePolicy([], LIMITS)).toThrow('no policy files');
  });
});

describe('parsePolicy: settings', () => {
  const ENTITLEMENT = `  - id: db-read
    connector: db
    scope: {}
    eligible: [devs]
    maxDuration: 1h
    approval: { approvals: 1, approverGroups: [leads] }
`;

  it('refuses an unknown setting, a bad duration and settings declared in two files', () => {
    expect(
      problemsOf([{ name: 'p.yaml', text: `${HEADER}${ENTITLEMENT}settings: { cooldown: 2h }\n` }]),
    ).toEqual([expect.objectContaining({ reason: 'unknown key "cooldown" in settings' })]);
    expect(
      problemsOf([{ name: 'p.yaml', text: `${HEADER}${ENTITLEMENT}settings: { recoveryCooldown: 0s }\n` }]),
    ).toEqual([expect.objectContaining({ path: 'settings.recoveryCooldown' })]);
    expect(
      problemsOf([
        { name: 'a.yaml', text: `${HEADER}${ENTITLEMENT}settings: { recoveryCooldown: 1h }\n` },
        { name: 'b.yaml', text: `settings: { recoveryCooldown: 2h }\n` },
      ]),
    ).toEqual([
      expect.objectContaining({ file: 'b.yaml', reason: expect.stringMatching(/settings is defined twice/) }),
    ]);
  });
});

describe('parsePolicy: webhook URLs over plain http://', () => {
  const webhook = (url: string, extra = '') =>
    `connectors:\n  hook:\n    type: webhook\n    url: ${url}\n    secretEnv: HOOK_SECRET\n${extra}`;
  const parse = (text: string) => parsePolicy([{ name: 'p.yaml', text }], LIMITS);

  it('refuses http:// to another host, naming the connector, file and line of the url', () => {
    expect(problemsOf([{ name: 'p.yaml', text: webhook('http://hooks.example.com/jit') }])).toEqual([
      {
        file: 'p.yaml',
        line: 4,
        path: 'connectors.hook.url',
        reason:
          'connector "hook" url is plain http:// to a host other than localhost; ' +
          'use https://, or set allowInsecureHttp: true on the connector to accept it',
      },
    ]);
    const explicitFalse = webhook('http://10.0.0.7:8080/jit', '    allowInsecureHttp: false\n');
    expect(problemsOf([{ name: 'p.yaml', text: explicitFalse }])).toEqual([
      expect.objectContaining({ line: 4, path: 'connectors.hook.url' }),
    ]);
  });

  it('accepts it with allowInsecureHttp: true, keeps the flag and warns about the connector', () => {
    const policy = parse(webhook('http://hooks.example.com/jit', '    allowInsecureHttp: true\n'));
    expect(policy.connectors.hook).toEqual({
      type: 'webhook',
      url: 'http://hooks.example.com/jit',
      secretEnv: 'HOOK_SECRET',
      allowInsecureHttp: true,
    });
    expect(policyWarnings(policy)).toEqual([
      'connector "hook" sends webhooks over plain http:// outside localhost (allowInsecureHttp: true)',
    ]);
  });

  it.each([
    'http://localhost:8080/jit',
    'http://127.0.0.1:9/jit',
    'http://[::1]:9/jit',
    'https://hooks.example.com/',
  ])(
    'accepts %s without the flag, does not warn, and leaves the flag out of the policy (and its hash)',
    (url) => {
      const policy = parse(webhook(url));
      expect(policy.connectors.hook).toEqual({ type: 'webhook', url, secretEnv: 'HOOK_SECRET' });
      expect(policyWarnings(policy)).toEqual([]);
    },
  );

  it('leaves allowInsecureHttp: false out of the policy, and refuses a flag that is not true or false', () => {
    const policy = parse(webhook('https://hooks.example.com/', '    allowInsecureHttp: false\n'));
    expect(policy.connectors.hook).not.toHaveProperty('allowInsecureHttp');
    expect(
      problemsOf([{ name: 'p.yaml', text: webhook('http://x.example/', '    allowInsecureHttp: yes\n') }]),
    ).toEqual([
      expect.objectContaining({
        line: 6,
        reason: 'connectors.hook.allowInsecureHttp must be true or false, not a string',
      }),
    ]);
  });
});

describe('parsePolicy: workloads (issue 21) are refused with file, line and reason', () => {
  // Thirteen lines, so the entitlement of every fixture below starts on line 14.
  const workloadHeader = (workload = '', ownerGroup = 'platform') => `groups:
  devs: [alice, bob]
  leads: [carol, dave]
  platform: [erin]
connectors:
  db: { type: postgres, urlEnv: DB_URL }
workloads:
  - id: deploy-bot
    issuer: https://token.actions.githubusercontent.com
    audience: jit-broker
    subject: 'repo:org/app:ref:refs/heads/*'
    ownerGroup: ${ownerGroup}
${workload}entitlements:
`;
  /** The header without its `entitlements:` key, for fixtures about workloads alone. */
  const workloadsOnly = (workload = '', ownerGroup = 'platform') =>
    workloadHeader(workload, ownerGroup).replace(/entitlements:\n$/, '');
  const entitlement = (lines: string) =>
    `  - id: e1\n    connector: db\n    scope: {}\n    eligible: [devs]\n${lines}`;
  const APPROVAL = '    approval: { approvals: 1, approverGroups: [leads] }\n';
  const workload = (fields: string) => `  - id: other-bot\n${fields}`;
  const OTHER = `    audience: jit-broker\n    subject: 'repo:org/other:*'\n    ownerGroup: platform\n`;
  const URL_RULE = 'must be an https:// URL (http:// only for localhost, 127.0.0.1 or [::1])';
  const GUARD = 'a workload always needs at least one human approval';

  // [what, YAML, line, path, reason]: each fixture has exactly one problem.
  const fixtures: [string, string, number, string, string][] = [
    [
      'an unknown workload in eligibleWorkloads',
      workloadHeader() +
        entitlement(
          `    eligibleWorkloads:\n      - deploy-bot\n      - nope\n    maxDuration: 1h\n${APPROVAL}`,
        ),
      20,
      'entitlements[0].eligibleWorkloads[1]',
      'entitlement "e1" lists unknown workload "nope" in eligibleWorkloads',
    ],
    [
      'a self-service entitlement workloads may request',
      workloadHeader() +
        entitlement('    eligibleWorkloads: [deploy-bot]\n    maxDuration: 1h\n    selfService: true\n'),
      20,
      'entitlements[0].selfService',
      `entitlement "e1" lists eligibleWorkloads but is selfService; ${GUARD}`,
    ],
    [
      'a break-glass entitlement workloads may request',
      workloadHeader() +
        entitlement(
          '    eligibleWorkloads: [deploy-bot]\n    maxDuration: 30m\n    breakGlass: { notify: [leads], postReviewWithin: 24h }\n',
        ),
      20,
      'entitlements[0].breakGlass',
      `entitlement "e1" lists eligibleWorkloads but is breakGlass; ${GUARD}`,
    ],
    [
      'a workload entitlement without an approval block',
      workloadHeader() + entitlement('    eligibleWorkloads: [deploy-bot]\n    maxDuration: 1h\n'),
      18,
      'entitlements[0].eligibleWorkloads',
      `entitlement "e1" lists eligibleWorkloads but has no approval; ${GUARD}`,
    ],
    [
      'a workload entitlement with zero approvals',
      workloadHeader() +
        entitlement(
          '    eligibleWorkloads: [deploy-bot]\n    maxDuration: 1h\n    approval:\n      approvals: 0\n      approverGroups: [leads]\n',
        ),
      21,
      'entitlements[0].approval.approvals',
      `entitlement "e1" lists eligibleWorkloads but requires 0 approvals; ${GUARD}`,
    ],
    [
      'workloadMaxDuration above maxDuration',
      workloadHeader() +
        entitlement(
          `    eligibleWorkloads: [deploy-bot]\n    maxDuration: 1h\n    workloadMaxDuration: 2h\n${APPROVAL}`,
        ),
      20,
      'entitlements[0].workloadMaxDuration',
      'entitlement "e1" workloadMaxDuration 2h exceeds its maxDuration of 1h',
    ],
    [
      'workloadMaxDuration without eligibleWorkloads',
      workloadHeader() + entitlement(`    maxDuration: 1h\n    workloadMaxDuration: 15m\n${APPROVAL}`),
      19,
      'entitlements[0].workloadMaxDuration',
      'entitlement "e1" sets workloadMaxDuration but lists no eligibleWorkloads',
    ],
    [
      'an empty eligibleWorkloads list',
      workloadHeader() + entitlement(`    eligibleWorkloads: []\n    maxDuration: 1h\n${APPROVAL}`),
      18,
      'entitlements[0].eligibleWorkloads',
      'entitlements[0].eligibleWorkloads must list at least one workload, or be left out',
    ],
    [
      'an owner group that is not defined',
      workloadsOnly('', 'ops'),
      12,
      'workloads[0].ownerGroup',
      'workload "deploy-bot" names unknown group "ops" as ownerGroup',
    ],
    [
      'a workload id defined twice',
      workloadsOnly(`  - id: deploy-bot\n    issuer: https://token.actions.githubusercontent.com\n${OTHER}`),
      13,
      'workloads[1].id',
      'workload "deploy-bot" is defined twice: p.yaml:8 and p.yaml:13',
    ],
    [
      'two workloads with the same issuer, audience and subject',
      workloadsOnly(
        workload(
          "    issuer: https://token.actions.githubusercontent.com\n    audience: jit-broker\n    subject: 'repo:org/app:ref:refs/heads/*'\n    ownerGroup: leads\n",
        ),
      ),
      16,
      'workloads[1].subject',
      'workload "other-bot" has the same issuer, audience and subject as workload "deploy-bot" (p.yaml:11); a token would match both',
    ],
    [
      'an issuer over plain http:// to another host',
      workloadsOnly(workload(`    issuer: http://issuer.example.com\n${OTHER}`)),
      14,
      'workloads[1].issuer',
      `workloads[1].issuer ${URL_RULE}`,
    ],
    [
      'an issuer that is not a URL',
      workloadsOnly(workload(`    issuer: token.actions.githubusercontent.com\n${OTHER}`)),
      14,
      'workloads[1].issuer',
      `workloads[1].issuer ${URL_RULE}`,
    ],
    [
      'a jwksUri that is not http(s)',
      workloadsOnly(
        workload(
          `    issuer: https://issuer.example.com\n    jwksUri: ftp://issuer.example.com/keys\n${OTHER}`,
        ),
      ),
      15,
      'workloads[1].jwksUri',
      `workloads[1].jwksUri ${URL_RULE}`,
    ],
    [
      'an empty subject',
      workloadsOnly(
        workload(
          "    issuer: https://issuer.example.com\n    audience: jit-broker\n    subject: ''\n    ownerGroup: platform\n",
        ),
      ),
      16,
      'workloads[1].subject',
      'workloads[1].subject must not be empty',
    ],
    [
      'a workload without an owner group',
      workloadsOnly(
        workload("    issuer: https://issuer.example.com\n    audience: jit-broker\n    subject: 'x'\n"),
      ),
      13,
      'workloads[1].ownerGroup',
      'workloads[1].ownerGroup is required',
    ],
    [
      'an unknown workload key',
      workloadsOnly(workload(`    issuer: https://issuer.example.com\n${OTHER}    secret: hunter2\n`)),
      18,
      'workloads[1].secret',
      'unknown key "secret" in workloads[1]',
    ],
    [
      'an invalid workload id',
      workloadsOnly(`  - id: Deploy:Bot\n    issuer: https://issuer.example.com\n${OTHER}`),
      13,
      'workloads[1].id',
      `workloads[1].id "Deploy:Bot" is not a valid id (${ID_RULE})`,
    ],
  ];

  it.each(fixtures)('%s', (_what, text, line, path, reason) => {
    expect(problemsOf([{ name: 'p.yaml', text }])).toEqual([{ file: 'p.yaml', line, path, reason }]);
  });

  it('names both files when a workload id is defined in two of them', () => {
    const first = { name: 'policies/10-a.yaml', text: workloadsOnly() };
    const second = {
      name: 'policies/20-b.yaml',
      text: `workloads:\n  - id: deploy-bot\n    issuer: https://issuer.example.com\n${OTHER}`,
    };
    expect(problemsOf([first, second])).toEqual([
      {
        file: 'policies/20-b.yaml',
        line: 2,
        path: 'workloads[0].id',
        reason: 'workload "deploy-bot" is defined twice: policies/10-a.yaml:8 and policies/20-b.yaml:2',
      },
    ]);
  });

  it.each(['http://127.0.0.1:4567', 'http://localhost:8080/issuer', 'http://[::1]:9', 'https://a.example/'])(
    'accepts the issuer and jwksUri %s',
    (url) => {
      const text = workloadsOnly(workload(`    issuer: ${url}\n    jwksUri: ${url}\n${OTHER}`));
      const policy = parsePolicy([{ name: 'p.yaml', text }], LIMITS);
      expect(policy.workloads?.map(({ id, issuer, jwksUri }) => ({ id, issuer, jwksUri }))).toEqual([
        { id: 'deploy-bot', issuer: 'https://token.actions.githubusercontent.com', jwksUri: undefined },
        { id: 'other-bot', issuer: url, jwksUri: url },
      ]);
    },
  );
});
