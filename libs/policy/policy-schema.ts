import { z } from 'zod';
import { unsafeFreeTextCharacter, type FreeTextOptions } from '../domain/free-text.js';
import { isHttpsOrLocal, USERNAME_PATTERN } from '../domain/policy.js';
import { durationSeconds, notADuration } from './duration.js';
import type { PolicyProblem } from './policy-error.js';
import { pathText, problemAt, type SourceFile } from './yaml-lines.js';

// The one schema for a policy file. Messages here are written to follow the path of the node they are about.

const ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;
const ENV_NAME_PATTERN = /^[A-Z_][A-Z0-9_]*$/;
const CONNECTOR_TYPES = ['jwt', 'postgres', 'ssh', 'webhook'] as const;
const CHANNEL_TYPES = ['smtp', 'slack', 'webhook'] as const;

const ID_RULE = 'lowercase letters, digits and "-", starting with a letter or digit, at most 64 characters';
const USERNAME_RULE =
  'lowercase letters, digits, ".", "_" and "-", starting with a letter or digit, at most 64 characters';

const name = z.string().regex(ID_PATTERN, { error: `is not a valid name (${ID_RULE})` });
const entitlementId = z.string().regex(ID_PATTERN, { error: `is not a valid id (${ID_RULE})` });
const username = z.string().regex(USERNAME_PATTERN, { error: `is not a valid username (${USERNAME_RULE})` });
const envName = z
  .string()
  .regex(ENV_NAME_PATTERN, { error: 'is not a valid environment variable name (A-Z, 0-9 and "_")' });
/** Why policy text shown to people (titles, patterns, scope) may not hold `value`, as a schema message. */
function unsafeShownText(value: string, options: FreeTextOptions): string | null {
  const problem = unsafeFreeTextCharacter(value, options);
  return problem ? `must be plain text: it contains ${problem}` : null;
}
const text = z
  .string()
  .min(1, { error: 'must not be empty' })
  .superRefine((value, context) => {
    const problem = unsafeShownText(value, { multiLine: false });
    if (problem) context.addIssue({ code: 'custom', message: problem });
  });
const groupList = z.array(name).min(1, { error: 'must list at least one group' });

const OIDC_URL_RULE = 'must be an https:// URL (http:// only for localhost, 127.0.0.1 or [::1])';
/** Where a workload's tokens and keys come from: https, or plain http on this machine (tests, a local issuer). */
const oidcUrl = text.superRefine((value, context) => {
  const url = URL.canParse(value) ? new URL(value) : null;
  if (!url || !isHttpsOrLocal(url)) context.addIssue({ code: 'custom', message: OIDC_URL_RULE });
});

const duration = z
  .string({
    error: (issue) => (issue.input === undefined ? undefined : 'must be a duration string like "1h"'),
  })
  .transform((value, context) => {
    const seconds = durationSeconds(value);
    if (seconds === null) {
      context.addIssue({ code: 'custom', message: notADuration(value) });
      return z.NEVER;
    }
    return seconds;
  });

// Scope is free-form for the connector to read, but it is hashed as canonical JSON: only JSON values, and
// no "__proto__" key, which YAML keeps but a copy into a JS object silently drops.
const scope = z.unknown().transform((value, context): Record<string, unknown> => {
  const problem = (path: (string | number)[], message: string) =>
    context.addIssue({ code: 'custom', path, message });
  const visit = (node: unknown, path: (string | number)[]): void => {
    if (Array.isArray(node)) node.forEach((item, index) => visit(item, [...path, index]));
    else if (isPlainMapping(node))
      for (const [key, item] of Object.entries(node)) {
        const unsafeKey = unsafeShownText(key, { multiLine: false });
        if (key === '__proto__') problem([...path, key], 'is a reserved key');
        else if (unsafeKey) problem([...path, key], unsafeKey);
        else visit(item, [...path, key]);
      }
    else if (typeof node === 'string') {
      // Approvers read the scope: a multi-line value (a statement) is fine, hidden or reordered text is not.
      const unsafe = unsafeShownText(node, { multiLine: true });
      if (unsafe) problem(path, unsafe);
    } else if (typeof node === 'number' && !Number.isFinite(node)) problem(path, 'must be a finite number');
    else if (!['string', 'number', 'boolean'].includes(typeof node) && node !== null)
      problem(path, 'must be a string, number, true/false, null, list or mapping');
  };
  if (value === undefined) problem([], 'is required');
  else if (!isPlainMapping(value)) problem([], `must be a mapping, not ${describeValue(value)}`);
  else visit(value, []);
  return value as Record<string, unknown>;
});

function isPlainMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype;
}

export const connectorSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('jwt'), audience: text }),
  z.strictObject({ type: z.literal('postgres'), urlEnv: envName }),
  z.strictObject({ type: z.literal('ssh'), caKeyEnv: envName.optional() }),
  z.strictObject({
    type: z.literal('webhook'),
    url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
    secretEnv: envName,
    allowInsecureHttp: z.boolean().optional(),
  }),
]);

const entitlementSchema = z.strictObject({
  id: entitlementId,
  title: text.optional(),
  /** Shown to requesters and approvers: what the privilege lets one do. */
  description: text.optional(),
  connector: z.string(),
  scope,
  eligible: groupList,
  maxDuration: duration,
  requires: z
    .strictObject({
      justification: z.boolean().optional(),
      ticketPattern: text.nullable().optional(),
      /** The ticket format in words ("an incident number, like INC-1234"), shown instead of the pattern. */
      ticketHint: text.optional(),
    })
    .optional(),
  approval: z
    .strictObject({
      approvals: z.number().int().min(0, { error: 'must not be negative' }),
      approverGroups: groupList,
      pendingTtl: duration.optional(),
      activationWindow: duration.optional(),
    })
    .optional(),
  breakGlass: z.strictObject({ notify: groupList, postReviewWithin: duration }).optional(),
  selfService: z.boolean().optional(),
  authenticator: z
    .strictObject({
      deviceBound: z.boolean().optional(),
      aaguids: z
        .array(z.guid({ error: 'is not an AAGUID (a UUID like "00000000-0000-0000-0000-000000000000")' }))
        .min(1, { error: 'must list at least one AAGUID, or be left out' })
        .nullable()
        .optional(),
    })
    .optional(),
  /** Workload ids (issue 21) that may request it; such an entitlement always needs a human approval. */
  eligibleWorkloads: z
    .array(entitlementId)
    .min(1, { error: 'must list at least one workload, or be left out' })
    .optional(),
  /** A workload's cap; default the lesser of maxDuration and 15m. */
  workloadMaxDuration: duration.optional(),
});

/** A non-human requester (issue 21), known by the issuer, audience and subject of its OIDC tokens. */
const workloadSchema = z.strictObject({
  id: entitlementId,
  title: text.optional(),
  issuer: oidcUrl,
  audience: text,
  /** A glob over the token's `sub` (libs/domain subjectMatches). */
  subject: text,
  ownerGroup: name,
  jwksUri: oidcUrl.optional(),
});

export const settingsSchema = z.strictObject({ recoveryCooldown: duration.optional() });

/** Notification kinds a channel may be limited to (libs/notify NotificationKind values). */
const notificationEvents = z
  .array(z.string().regex(/^[a-z][a-z.-]{0,63}$/))
  .min(1)
  .optional();
const notificationChannelSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('smtp'),
    host: z.string().regex(/^[A-Za-z0-9.:[\]-]{1,253}$/, { error: 'must be a host name or address' }),
    port: z.number().int().min(1).max(65535),
    from: z.email({ error: 'must be an e-mail address' }),
    secure: z.boolean().optional(),
    userEnv: envName.optional(),
    passwordEnv: envName.optional(),
    events: notificationEvents,
  }),
  z.strictObject({ type: z.literal('slack'), urlEnv: envName, events: notificationEvents }),
  z.strictObject({
    type: z.literal('webhook'),
    url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
    secretEnv: envName,
    events: notificationEvents,
  }),
]);

export const notificationsSchema = z.strictObject({
  digestInterval: duration.optional(),
  reminderBefore: duration.optional(),
  channels: z.record(name, notificationChannelSchema),
});

const policyFileSchema = z.strictObject({
  groups: z.record(name, z.array(username)).optional(),
  connectors: z.record(name, connectorSchema).optional(),
  entitlements: z.array(entitlementSchema).optional(),
  settings: settingsSchema.optional(),
  notifications: notificationsSchema.optional(),
  workloads: z.array(workloadSchema).optional(),
});

export type ParsedFile = z.output<typeof policyFileSchema>;
export type ParsedEntitlement = z.output<typeof entitlementSchema>;
export type ParsedWorkload = z.output<typeof workloadSchema>;

/** Wording for the issues the schema leaves to zod: missing and mistyped values, unknown connector types. */
function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.input === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_union'))
    return 'is required';
  if (issue.code === 'invalid_union' && issue.note === 'No matching discriminator') {
    const missing = (issue.input as Record<string, unknown> | null)?.type === undefined;
    const types = issue.path?.includes('notifications') ? CHANNEL_TYPES : CONNECTOR_TYPES;
    return `${missing ? 'is required, one of' : 'must be one of'} ${types.join(', ')}`;
  }
  if (issue.code === 'invalid_type') {
    const expected: Record<string, string> = {
      string: 'a string',
      number: 'a whole number',
      int: 'a whole number',
      boolean: 'true or false',
      object: 'a mapping',
      record: 'a mapping',
      array: 'a list',
    };
    return `must be ${expected[issue.expected] ?? issue.expected}, not ${describeValue(issue.input)}`;
  }
  return undefined;
}

function describeValue(value: unknown): string {
  if (value === null) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'object') return 'a mapping';
  return typeof value;
}

/** Checks one file's values against the schema; problems name the file, line and path. */
export function validatePolicyFile(
  source: SourceFile,
  value: unknown,
): { source: SourceFile; data: ParsedFile } | { problems: PolicyProblem[] } {
  const result = policyFileSchema.safeParse(value, { error: describeIssue });
  if (result.success) return { source, data: result.data };
  return { problems: result.error.issues.flatMap((issue) => problemsOfIssue(source, issue)) };
}

function problemsOfIssue(source: SourceFile, issue: z.core.$ZodIssue): PolicyProblem[] {
  const path = issue.path.filter((key): key is string | number => typeof key !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({
      ...problemAt({ source, path: [...path, key] }, '', { atKey: true }),
      reason:
        path.length === 0 ? `unknown top-level key "${key}"` : `unknown key "${key}" in ${pathText(path)}`,
    }));
  }
  if (issue.code === 'invalid_key') {
    const key = String(path.at(-1));
    const reason = `${pathText(path.slice(0, -1))} key ${JSON.stringify(key)} ${issue.issues[0]?.message ?? 'is invalid'}`;
    return [problemAt({ source, path }, reason, { atKey: true })];
  }
  if (issue.code === 'invalid_format' && issue.format === 'regex') {
    const value = source.doc.getIn(path);
    return [problemAt({ source, path }, `${pathText(path)} ${JSON.stringify(value)} ${issue.message}`)];
  }
  return [problemAt({ source, path }, `${pathText(path)} ${issue.message}`)];
}
