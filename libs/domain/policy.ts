import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { DomainError, ErrorCode } from './errors.js';
import { unsafeFreeTextCharacter, type FreeTextOptions } from './free-text.js';

// ---------------------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------------------

/** Limits that come from config rather than from the policy files. */
export interface PolicyLimits {
  hardMaxDurationSeconds: number;
}

/** One policy source; `name` is what problems show (e.g. `policies/example.yaml`). */
export interface PolicyFile {
  name: string;
  text: string;
}

/** One reason a policy was refused; `path` is the YAML path (e.g. `entitlements[2].approval.approvals`). */
export interface PolicyProblem {
  file: string;
  line: number | null;
  path: string;
  reason: string;
}

export type ConnectorConfig =
  | { type: 'jwt'; audience: string }
  | { type: 'postgres'; urlEnv: string }
  | { type: 'ssh'; caKeyEnv?: string }
  | { type: 'webhook'; url: string; secretEnv: string };

export interface Entitlement {
  id: string;
  title: string;
  connector: string;
  scope: Record<string, unknown>;
  /** Group names whose members may request it. */
  eligible: string[];
  maxDurationSeconds: number;
  /** `ticketPattern` is compiled as `new RegExp(ticketPattern)` (no flags); null means no ticket is asked for. */
  requires: { justification: boolean; ticketPattern: string | null };
  /** Null exactly when the entitlement is break-glass or self-service. */
  approval: {
    approvals: number;
    approverGroups: string[];
    pendingTtlSeconds: number;
    activationWindowSeconds: number;
  } | null;
  breakGlass: { notify: string[]; postReviewWithinSeconds: number } | null;
  selfService: boolean;
  authenticator: { deviceBound: boolean; aaguids: string[] | null };
}

/** Policy-wide settings (the `settings:` mapping); absent when no file declares it, so older hashes hold. */
export interface PolicySettings {
  /** After a recovery invite is used, the user's approvals do not count toward quorum for this long. */
  recoveryCooldownSeconds: number;
}

export interface Policy {
  groups: Record<string, string[]>;
  connectors: Record<string, ConnectorConfig>;
  entitlements: Entitlement[];
  settings?: PolicySettings;
}

/** A refused policy: every problem found, each with file, line and reason. */
export class PolicyError extends DomainError {
  constructor(readonly problems: PolicyProblem[]) {
    super(ErrorCode.POLICY_INVALID, formatProblems(problems), problems);
    this.name = 'PolicyError';
  }
}

/** Self-service skips human approval, so its grants stay short whatever the configured hard cap. */
export const SELF_SERVICE_MAX_SECONDS = 60 * 60;
/** Break-glass skips approval up front (it is reviewed afterwards), so its grants stay short too. */
export const BREAK_GLASS_MAX_SECONDS = 60 * 60;
const DEFAULT_PENDING_TTL_SECONDS = 60 * 60;
/** How long an approved (or self-service) request may wait for its activation, unless the policy says. */
export const DEFAULT_ACTIVATION_WINDOW_SECONDS = 15 * 60;

/** The quorum cool-down after a recovery when the policy sets none (DESIGN §5). */
export const DEFAULT_RECOVERY_COOLDOWN_SECONDS = 24 * 60 * 60;

/** What a username looks like, here and wherever users are created. */
export const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;
const ENV_NAME_PATTERN = /^[A-Z_][A-Z0-9_]*$/;
const DURATION_PATTERN = /^(?:(\d{1,9})d)?(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?$/;
const CONNECTOR_TYPES = ['jwt', 'postgres', 'ssh', 'webhook'] as const;

// ---------------------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------------------

/** "90s", "15m", "1h", "1h30m", "2d" -> seconds; units in the order d, h, m, s, each at most once; > 0. */
export function parseDuration(text: string): number {
  const seconds = durationSeconds(text);
  if (seconds === null) throw new DomainError(ErrorCode.VALIDATION_FAILED, notADuration(text));
  return seconds;
}

/** The inverse of parseDuration, for messages: 5400 -> "1h30m". */
export function formatDuration(seconds: number): string {
  const units: [string, number][] = [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ];
  let rest = seconds;
  let text = '';
  for (const [unit, size] of units) {
    const count = Math.floor(rest / size);
    if (count > 0) text += `${count}${unit}`;
    rest -= count * size;
  }
  return text || '0s';
}

function durationSeconds(text: unknown): number | null {
  if (typeof text !== 'string' || text === '') return null;
  const match = DURATION_PATTERN.exec(text);
  if (!match) return null;
  const [days, hours, minutes, seconds] = match.slice(1).map((part) => Number(part ?? 0));
  const total = days * 86_400 + hours * 3_600 + minutes * 60 + seconds;
  return Number.isSafeInteger(total) && total > 0 ? total : null;
}

function notADuration(text: string): string {
  return `${JSON.stringify(text)} is not a positive duration like "90s", "15m", "1h30m" or "2d"`;
}

// ---------------------------------------------------------------------------------------------------------
// The one schema for a policy file. Messages here are written to follow the path of the node they are about.
// ---------------------------------------------------------------------------------------------------------

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

const connectorSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('jwt'), audience: text }),
  z.strictObject({ type: z.literal('postgres'), urlEnv: envName }),
  z.strictObject({ type: z.literal('ssh'), caKeyEnv: envName.optional() }),
  z.strictObject({
    type: z.literal('webhook'),
    url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
    secretEnv: envName,
  }),
]);

const entitlementSchema = z.strictObject({
  id: entitlementId,
  title: text.optional(),
  connector: z.string(),
  scope,
  eligible: groupList,
  maxDuration: duration,
  requires: z
    .strictObject({ justification: z.boolean().optional(), ticketPattern: text.nullable().optional() })
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
});

const settingsSchema = z.strictObject({ recoveryCooldown: duration.optional() });

const policyFileSchema = z.strictObject({
  groups: z.record(name, z.array(username)).optional(),
  connectors: z.record(name, connectorSchema).optional(),
  entitlements: z.array(entitlementSchema).optional(),
  settings: settingsSchema.optional(),
});

type ParsedFile = z.output<typeof policyFileSchema>;
type ParsedEntitlement = z.output<typeof entitlementSchema>;

/** Wording for the issues the schema leaves to zod: missing and mistyped values, unknown connector types. */
function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.input === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_union'))
    return 'is required';
  if (issue.code === 'invalid_union' && issue.note === 'No matching discriminator') {
    const missing = (issue.input as Record<string, unknown> | null)?.type === undefined;
    return `${missing ? 'is required, one of' : 'must be one of'} ${CONNECTOR_TYPES.join(', ')}`;
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

// ---------------------------------------------------------------------------------------------------------
// Parsing: YAML -> schema (per file) -> merge -> semantic checks (whole policy)
// ---------------------------------------------------------------------------------------------------------

type YamlPath = (string | number)[];

interface SourceFile {
  name: string;
  doc: Document;
  lineCounter: LineCounter;
}

/** Where a value came from, so a problem found after merging still names its file and line. */
interface Origin {
  source: SourceFile;
  path: YamlPath;
}

/** Parses and validates every file as one policy; throws PolicyError naming file, line and reason. */
export function parsePolicy(files: PolicyFile[], limits: PolicyLimits): Policy {
  if (files.length === 0)
    throw new PolicyError([{ file: '', line: null, path: '', reason: 'no policy files' }]);

  const problems: PolicyProblem[] = [];
  const parsed: { source: SourceFile; data: ParsedFile }[] = [];
  for (const file of files) {
    const result = parseFile(file);
    if ('problems' in result) problems.push(...result.problems);
    else parsed.push(result);
  }
  // Cross-file checks on a partial policy would only add noise (unknown groups defined in a broken file).
  if (problems.length > 0) throw new PolicyError(problems);

  const groups = new Map<string, { members: string[]; origin: Origin }>();
  const connectors = new Map<string, { config: ConnectorConfig; origin: Origin }>();
  const entitlements = new Map<string, { entitlement: Entitlement; origin: Origin }>();
  let settings: { settings: PolicySettings; origin: Origin } | null = null;
  for (const { source, data } of parsed) {
    if (data.settings) {
      const origin = { source, path: ['settings'] };
      if (settings) problems.push(definedTwice('settings', settings.origin, origin));
      else settings = { settings: normaliseSettings(data.settings), origin };
    }
    for (const [groupName, members] of Object.entries(data.groups ?? {})) {
      const origin = { source, path: ['groups', groupName] };
      const first = groups.get(groupName);
      if (first) problems.push(definedTwice(`group "${groupName}"`, first.origin, origin));
      else groups.set(groupName, { members: [...new Set(members)].sort(), origin });
    }
    for (const [connectorName, config] of Object.entries(data.connectors ?? {})) {
      const origin = { source, path: ['connectors', connectorName] };
      const first = connectors.get(connectorName);
      if (first) problems.push(definedTwice(`connector "${connectorName}"`, first.origin, origin));
      else connectors.set(connectorName, { config: normaliseConnector(config), origin });
    }
    (data.entitlements ?? []).forEach((raw, index) => {
      const origin = { source, path: ['entitlements', index] };
      const first = entitlements.get(raw.id);
      if (first)
        problems.push(
          definedTwice(`entitlement "${raw.id}"`, first.origin, { source, path: [...origin.path, 'id'] }),
        );
      else entitlements.set(raw.id, { entitlement: normaliseEntitlement(raw), origin });
    });
  }

  const policy: Policy = {
    groups: Object.fromEntries([...groups].sort(byKey).map(([key, { members }]) => [key, members])),
    connectors: Object.fromEntries([...connectors].sort(byKey).map(([key, { config }]) => [key, config])),
    entitlements: [...entitlements.values()].map(({ entitlement }) => entitlement),
    ...(settings ? { settings: settings.settings } : {}),
  };
  for (const { entitlement, origin } of entitlements.values())
    problems.push(...checkEntitlement(policy, entitlement, origin, limits));
  if (problems.length > 0) throw new PolicyError(problems);
  return policy;
}

function parseFile(
  file: PolicyFile,
): { source: SourceFile; data: ParsedFile } | { problems: PolicyProblem[] } {
  const lineCounter = new LineCounter();
  // The YAML 1.2 core schema even under a `%YAML 1.1` directive, where `yes` is true and `e1` a number.
  const doc = parseDocument(file.text, { lineCounter, prettyErrors: false, schema: 'core' });
  const source: SourceFile = { name: file.name, doc, lineCounter };
  if (doc.errors.length > 0) {
    return {
      problems: doc.errors.map((error) => ({
        file: file.name,
        line: lineCounter.linePos(error.pos[0]).line,
        path: '',
        reason: `YAML syntax error: ${error.message}`,
      })),
    };
  }

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // Unresolved or excessive aliases surface only when the document is turned into values.
    const message = error instanceof Error ? error.message : String(error);
    return { problems: [{ file: file.name, line: null, path: '', reason: `YAML error: ${message}` }] };
  }
  if (value === null || value === undefined) {
    const reason = 'the file is empty; expected a mapping with groups, connectors and/or entitlements';
    return { problems: [{ file: file.name, line: null, path: '', reason }] };
  }

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

function problemAt(origin: Origin, reason: string, options: { atKey?: boolean } = {}): PolicyProblem {
  return {
    file: origin.source.name,
    line: lineOf(origin, options.atKey ?? false),
    path: pathText(origin.path),
    reason,
  };
}

/** The line of the node at `path`, or of its nearest existing parent; of the key instead when `atKey`. */
function lineOf({ source, path }: Origin, atKey: boolean): number | null {
  if (atKey && path.length > 0) {
    const parent = source.doc.getIn(path.slice(0, -1), true);
    if (isMap(parent)) {
      const pair = parent.items.find(
        (item) => isScalar(item.key) && String(item.key.value) === String(path.at(-1)),
      );
      if (pair && isNode(pair.key) && pair.key.range)
        return source.lineCounter.linePos(pair.key.range[0]).line;
    }
  }
  for (let depth = path.length; depth >= 0; depth--) {
    const node = source.doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) return source.lineCounter.linePos(node.range[0]).line;
  }
  return null;
}

function pathText(path: YamlPath): string {
  if (path.length === 0) return 'the document';
  return path.reduce<string>(
    (text, key) => (typeof key === 'number' ? `${text}[${key}]` : text ? `${text}.${key}` : key),
    '',
  );
}

function definedTwice(what: string, first: Origin, second: Origin): PolicyProblem {
  const firstAt = `${first.source.name}:${lineOf(first, true) ?? '?'}`;
  const secondAt = `${second.source.name}:${lineOf(second, true) ?? '?'}`;
  return problemAt(second, `${what} is defined twice: ${firstAt} and ${secondAt}`, { atKey: true });
}

function byKey<T>([a]: [string, T], [b]: [string, T]): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function normaliseConnector(config: z.output<typeof connectorSchema>): ConnectorConfig {
  if (config.type === 'ssh')
    return config.caKeyEnv ? { type: 'ssh', caKeyEnv: config.caKeyEnv } : { type: 'ssh' };
  return config;
}

function normaliseSettings(raw: z.output<typeof settingsSchema>): PolicySettings {
  return { recoveryCooldownSeconds: raw.recoveryCooldown ?? DEFAULT_RECOVERY_COOLDOWN_SECONDS };
}

/** Applies the defaults and turns durations into seconds; set-like lists are sorted so order never matters. */
function normaliseEntitlement(raw: ParsedEntitlement): Entitlement {
  const asSet = (items: string[]): string[] => [...new Set(items)].sort();
  return {
    id: raw.id,
    title: raw.title ?? raw.id,
    connector: raw.connector,
    scope: raw.scope,
    eligible: asSet(raw.eligible),
    maxDurationSeconds: raw.maxDuration,
    requires: {
      justification: raw.requires?.justification ?? true,
      ticketPattern: raw.requires?.ticketPattern ?? null,
    },
    approval: raw.approval
      ? {
          approvals: raw.approval.approvals,
          approverGroups: asSet(raw.approval.approverGroups),
          pendingTtlSeconds: raw.approval.pendingTtl ?? DEFAULT_PENDING_TTL_SECONDS,
          activationWindowSeconds: raw.approval.activationWindow ?? DEFAULT_ACTIVATION_WINDOW_SECONDS,
        }
      : null,
    breakGlass: raw.breakGlass
      ? { notify: asSet(raw.breakGlass.notify), postReviewWithinSeconds: raw.breakGlass.postReviewWithin }
      : null,
    selfService: raw.selfService ?? false,
    authenticator: {
      deviceBound: raw.authenticator?.deviceBound ?? false,
      aaguids: raw.authenticator?.aaguids
        ? asSet(raw.authenticator.aaguids.map((id) => id.toLowerCase()))
        : null,
    },
  };
}

/** The checks that need the whole policy, or that the schema cannot express. */
function checkEntitlement(
  policy: Policy,
  entitlement: Entitlement,
  origin: Origin,
  limits: PolicyLimits,
): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const at = (path: YamlPath, reason: string) =>
    problems.push(problemAt({ source: origin.source, path: [...origin.path, ...path] }, reason));
  const subject = `entitlement "${entitlement.id}"`;
  const unknownGroups = (groupNames: string[], path: YamlPath, field: string): boolean => {
    const unknown = groupNames.filter((groupName) => !Object.hasOwn(policy.groups, groupName));
    for (const groupName of unknown)
      at(
        [...path, indexIn(origin, path, groupName)],
        `${subject} lists unknown group "${groupName}" in ${field}`,
      );
    return unknown.length > 0;
  };

  if (!Object.hasOwn(policy.connectors, entitlement.connector))
    at(
      ['connector'],
      `${subject} uses connector "${entitlement.connector}", which is not defined under connectors`,
    );
  unknownGroups(entitlement.eligible, ['eligible'], 'eligible');
  if (entitlement.breakGlass)
    unknownGroups(entitlement.breakGlass.notify, ['breakGlass', 'notify'], 'breakGlass.notify');

  const { approval, breakGlass, selfService } = entitlement;
  if (selfService && breakGlass) at(['selfService'], `${subject} cannot be both selfService and breakGlass`);
  if (approval && breakGlass)
    at(
      ['approval'],
      `${subject} declares both approval and breakGlass; break-glass activates without approval`,
    );
  if (approval && selfService)
    at(
      ['approval'],
      `${subject} declares both approval and selfService; self-service activates without approval`,
    );
  if (!breakGlass && !selfService && (!approval || approval.approvals < 1))
    at(
      approval ? ['approval', 'approvals'] : ['id'],
      `${subject} needs at least 1 approval unless it declares breakGlass or selfService: true`,
    );

  if (approval) {
    const unknown = unknownGroups(
      approval.approverGroups,
      ['approval', 'approverGroups'],
      'approval.approverGroups',
    );
    const quorumProblem =
      unknown || approval.approvals < 1 ? null : checkQuorum(policy, entitlement, approval);
    if (quorumProblem) at(['approval', 'approvals'], `${subject} ${quorumProblem}`);
  }

  const maxDuration = formatDuration(entitlement.maxDurationSeconds);
  if (entitlement.maxDurationSeconds > limits.hardMaxDurationSeconds)
    at(
      ['maxDuration'],
      `${subject} maxDuration ${maxDuration} exceeds the hard cap of ${formatDuration(limits.hardMaxDurationSeconds)}`,
    );
  if (selfService && entitlement.maxDurationSeconds > SELF_SERVICE_MAX_SECONDS)
    at(
      ['maxDuration'],
      `self-service ${subject} maxDuration ${maxDuration} exceeds the self-service cap of ${formatDuration(SELF_SERVICE_MAX_SECONDS)}`,
    );
  if (breakGlass && entitlement.maxDurationSeconds > BREAK_GLASS_MAX_SECONDS)
    at(
      ['maxDuration'],
      `break-glass ${subject} maxDuration ${maxDuration} exceeds the break-glass cap of ${formatDuration(BREAK_GLASS_MAX_SECONDS)}`,
    );

  const { ticketPattern } = entitlement.requires;
  if (ticketPattern !== null && !isValidRegExp(ticketPattern))
    at(
      ['requires', 'ticketPattern'],
      `${subject} ticketPattern ${JSON.stringify(ticketPattern)} is not a valid regular expression`,
    );
  return problems;
}

/**
 * Quorum must be reachable by distinct approvers, and still reachable when the requester is one of them
 * (a requester never approves their own request).
 */
function checkQuorum(
  policy: Policy,
  entitlement: Entitlement,
  { approvals, approverGroups }: { approvals: number; approverGroups: string[] },
): string | null {
  const approvers = new Set(approverGroups.flatMap((groupName) => membersOf(policy, groupName)));
  const groupNames = approverGroups.join(', ');
  const countOf = (count: number) => `${count} ${count === 1 ? 'approver' : 'approvers'}`;
  if (approvers.size < approvals)
    return `requires ${approvals} approvals but group(s) ${groupNames} have only ${countOf(approvers.size)}`;
  const requesters = [
    ...new Set(entitlement.eligible.flatMap((groupName) => membersOf(policy, groupName))),
  ].sort();
  const requester = requesters.find((user) => approvers.has(user) && approvers.size - 1 < approvals);
  if (requester !== undefined)
    return (
      `requires ${approvals} approvals but group(s) ${groupNames} have only ` +
      `${countOf(approvers.size - 1)} other than requester "${requester}"`
    );
  return null;
}

/** Entitlement lists are sorted and deduplicated; the YAML ones are not, so an item is found by value. */
function indexIn({ source, path }: Origin, listPath: YamlPath, value: string): number {
  const list = source.doc.getIn([...path, ...listPath], true);
  return isSeq(list) ? list.items.findIndex((item) => isScalar(item) && item.value === value) : 0;
}

function isValidRegExp(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

function formatProblems(problems: PolicyProblem[]): string {
  const lines = problems.map(({ file, line, reason }) =>
    file ? `${file}${line === null ? '' : `:${line}`}: ${reason}` : reason,
  );
  return `invalid policy:\n${lines.join('\n')}`;
}

// ---------------------------------------------------------------------------------------------------------
// Hash and lookups
// ---------------------------------------------------------------------------------------------------------

/** sha256 (hex) of the RFC 8785 canonical JSON of the normalised policy. */
export function policyHash(policy: Policy): string {
  const canonical = canonicalize(policy);
  if (canonical === undefined) throw new DomainError(ErrorCode.INTERNAL, 'policy has no JSON form');
  return createHash('sha256').update(canonical).digest('hex');
}

export function findEntitlement(policy: Policy, id: string): Entitlement | undefined {
  return policy.entitlements.find((entitlement) => entitlement.id === id);
}

/** The names of the groups `username` belongs to, sorted. */
export function groupsOf(policy: Policy, username: string): string[] {
  return Object.keys(policy.groups)
    .filter((groupName) => membersOf(policy, groupName).includes(username))
    .sort();
}

export function isEligible(policy: Policy, entitlement: Entitlement, username: string): boolean {
  return isMemberOfAny(policy, entitlement.eligible, username);
}

/** Whether `username` is in one of the entitlement's approver groups (self-approval is checked elsewhere). */
export function isApprover(policy: Policy, entitlement: Entitlement, username: string): boolean {
  return (
    entitlement.approval !== null && isMemberOfAny(policy, entitlement.approval.approverGroups, username)
  );
}

/** Whether `username` is in an approver group of any entitlement: who may approve something. */
export function approvesAnything(policy: Policy, username: string): boolean {
  return policy.entitlements.some((entitlement) => isApprover(policy, entitlement, username));
}

/** How long a recovered user's approvals do not count toward quorum. */
export function recoveryCooldownSeconds(policy: Policy): number {
  return policy.settings?.recoveryCooldownSeconds ?? DEFAULT_RECOVERY_COOLDOWN_SECONDS;
}

function isMemberOfAny(policy: Policy, groupNames: string[], username: string): boolean {
  return groupNames.some((groupName) => membersOf(policy, groupName).includes(username));
}

/** Usernames in a group (none for an unknown group). */
// Own properties only: a group named "constructor" must not find Object.prototype's.
export function membersOf(policy: Policy, groupName: string): string[] {
  return Object.hasOwn(policy.groups, groupName) ? policy.groups[groupName] : [];
}
