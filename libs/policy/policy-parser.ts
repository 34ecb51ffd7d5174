import type { z } from 'zod';
import {
  DEFAULT_ACTIVATION_WINDOW_SECONDS,
  DEFAULT_DIGEST_INTERVAL_SECONDS,
  DEFAULT_RECOVERY_COOLDOWN_SECONDS,
  DEFAULT_REMINDER_BEFORE_SECONDS,
  type NotificationSettings,
  type ConnectorConfig,
  type Entitlement,
  type Policy,
  type PolicySettings,
  type Workload,
} from '../domain/policy.js';
import {
  checkConnector,
  checkEntitlement,
  checkWorkload,
  checkWorkloadsDistinct,
  type PolicyLimits,
} from './policy-checks.js';
import { PolicyError, type PolicyProblem } from './policy-error.js';
import {
  validatePolicyFile,
  type connectorSchema,
  type ParsedEntitlement,
  type notificationsSchema,
  type ParsedFile,
  type ParsedWorkload,
  type settingsSchema,
} from './policy-schema.js';
import {
  definedTwice,
  problemAt,
  readYaml,
  type Origin,
  type PolicyFile,
  type SourceFile,
} from './yaml-lines.js';

// Parsing: YAML -> schema (per file) -> merge -> checks (whole policy) -> the normalised Policy of libs/domain.

const DEFAULT_PENDING_TTL_SECONDS = 60 * 60;
/** A workload's grants stay short unless the policy says otherwise (never above the entitlement's cap). */
const DEFAULT_WORKLOAD_MAX_SECONDS = 15 * 60;

/** Every part of the merged policy, each with the origin that problems found later point at. */
interface Merged {
  groups: Map<string, { members: string[]; origin: Origin }>;
  connectors: Map<string, { config: ConnectorConfig; origin: Origin }>;
  entitlements: Map<string, { entitlement: Entitlement; origin: Origin }>;
  settings: { settings: PolicySettings; origin: Origin } | null;
  notifications: { notifications: NotificationSettings; origin: Origin } | null;
  /** Null when no file declares `workloads:`, so the policy leaves the key out (and older hashes hold). */
  workloads: Map<string, { workload: Workload; origin: Origin }> | null;
}

/** Parses and validates every file as one policy; throws PolicyError naming file, line and reason. */
export function parsePolicy(files: PolicyFile[], limits: PolicyLimits): Policy {
  if (files.length === 0)
    throw new PolicyError([{ file: '', line: null, path: '', reason: 'no policy files' }]);

  const problems: PolicyProblem[] = [];
  const parsed: { source: SourceFile; data: ParsedFile }[] = [];
  for (const file of files) {
    const read = readYaml(file);
    const result = 'problems' in read ? read : validatePolicyFile(read.source, read.value);
    if ('problems' in result) problems.push(...result.problems);
    else parsed.push(result);
  }
  // Cross-file checks on a partial policy would only add noise (unknown groups defined in a broken file).
  if (problems.length > 0) throw new PolicyError(problems);

  const merged = mergeFiles(parsed, problems);
  const policy: Policy = {
    groups: Object.fromEntries([...merged.groups].sort(byKey).map(([key, { members }]) => [key, members])),
    connectors: Object.fromEntries(
      [...merged.connectors].sort(byKey).map(([key, { config }]) => [key, config]),
    ),
    entitlements: [...merged.entitlements.values()].map(({ entitlement }) => entitlement),
    ...(merged.settings ? { settings: merged.settings.settings } : {}),
    ...(merged.notifications ? { notifications: merged.notifications.notifications } : {}),
    ...(merged.workloads
      ? { workloads: [...merged.workloads.values()].map(({ workload }) => workload).sort(byId) }
      : {}),
  };
  for (const [connectorName, { config, origin }] of merged.connectors)
    problems.push(...checkConnector(connectorName, config, origin));
  for (const { entitlement, origin } of merged.entitlements.values())
    problems.push(...checkEntitlement(policy, entitlement, origin, limits));
  const workloads = [...(merged.workloads?.values() ?? [])];
  for (const { workload, origin } of workloads) problems.push(...checkWorkload(policy, workload, origin));
  problems.push(...checkWorkloadsDistinct(workloads));
  if (problems.length > 0) throw new PolicyError(problems);
  return policy;
}

/** Merges the files, normalising each part; a name defined twice adds a problem naming both places. */
function mergeFiles(parsed: { source: SourceFile; data: ParsedFile }[], problems: PolicyProblem[]): Merged {
  const merged: Merged = {
    groups: new Map(),
    connectors: new Map(),
    entitlements: new Map(),
    settings: null,
    notifications: null,
    workloads: null,
  };
  for (const { source, data } of parsed) {
    if (data.settings) {
      const origin = { source, path: ['settings'] };
      if (merged.settings) problems.push(definedTwice('settings', merged.settings.origin, origin));
      else merged.settings = { settings: normaliseSettings(data.settings), origin };
    }
    if (data.notifications) {
      const origin = { source, path: ['notifications'] };
      if (merged.notifications)
        problems.push(definedTwice('notifications', merged.notifications.origin, origin));
      else merged.notifications = { notifications: normaliseNotifications(data.notifications), origin };
    }
    for (const [groupName, members] of Object.entries(data.groups ?? {})) {
      const origin = { source, path: ['groups', groupName] };
      const first = merged.groups.get(groupName);
      if (first) problems.push(definedTwice(`group "${groupName}"`, first.origin, origin));
      else merged.groups.set(groupName, { members: [...new Set(members)].sort(), origin });
    }
    for (const [connectorName, config] of Object.entries(data.connectors ?? {})) {
      const origin = { source, path: ['connectors', connectorName] };
      const first = merged.connectors.get(connectorName);
      if (first) problems.push(definedTwice(`connector "${connectorName}"`, first.origin, origin));
      else merged.connectors.set(connectorName, { config: normaliseConnector(config), origin });
    }
    (data.entitlements ?? []).forEach((raw, index) => {
      const origin = { source, path: ['entitlements', index] };
      const first = merged.entitlements.get(raw.id);
      if (first)
        problems.push(
          definedTwice(`entitlement "${raw.id}"`, first.origin, { source, path: [...origin.path, 'id'] }),
        );
      else merged.entitlements.set(raw.id, { entitlement: normaliseEntitlement(raw), origin });
      if (raw.workloadMaxDuration !== undefined && raw.eligibleWorkloads === undefined)
        problems.push(
          problemAt(
            { source, path: [...origin.path, 'workloadMaxDuration'] },
            `entitlement "${raw.id}" sets workloadMaxDuration but lists no eligibleWorkloads`,
          ),
        );
    });
    if (data.workloads) mergeWorkloads(source, data.workloads, (merged.workloads ??= new Map()), problems);
  }
  return merged;
}

/** Adds one file's workloads; an id defined twice adds a problem naming both places. */
function mergeWorkloads(
  source: SourceFile,
  workloads: ParsedWorkload[],
  into: NonNullable<Merged['workloads']>,
  problems: PolicyProblem[],
): void {
  workloads.forEach((raw, index) => {
    const origin = { source, path: ['workloads', index] };
    const first = into.get(raw.id);
    if (first)
      problems.push(
        definedTwice(`workload "${raw.id}"`, first.origin, { source, path: [...origin.path, 'id'] }),
      );
    else into.set(raw.id, { workload: normaliseWorkload(raw), origin });
  });
}

/** `title` defaults to the id; `jwksUri` only when given. */
function normaliseWorkload(raw: ParsedWorkload): Workload {
  return {
    id: raw.id,
    title: raw.title ?? raw.id,
    issuer: raw.issuer,
    audience: raw.audience,
    subject: raw.subject,
    ownerGroup: raw.ownerGroup,
    ...(raw.jwksUri ? { jwksUri: raw.jwksUri } : {}),
  };
}

function byId(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function byKey<T>([a]: [string, T], [b]: [string, T]): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Optional keys are left out unless set, so a policy that does not use them keeps its hash. */
function normaliseConnector(config: z.output<typeof connectorSchema>): ConnectorConfig {
  if (config.type === 'ssh')
    return config.caKeyEnv ? { type: 'ssh', caKeyEnv: config.caKeyEnv } : { type: 'ssh' };
  if (config.type === 'webhook') {
    const { allowInsecureHttp, ...webhook } = config;
    return allowInsecureHttp ? { ...webhook, allowInsecureHttp } : webhook;
  }
  return config;
}

function normaliseSettings(raw: z.output<typeof settingsSchema>): PolicySettings {
  return { recoveryCooldownSeconds: raw.recoveryCooldown ?? DEFAULT_RECOVERY_COOLDOWN_SECONDS };
}

/** Defaults applied; optional channel keys left out unless set. */
function normaliseNotifications(raw: z.output<typeof notificationsSchema>): NotificationSettings {
  const channels = Object.fromEntries(
    Object.entries(raw.channels)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([channelName, config]) => {
        const { secure, ...rest } = config as typeof config & { secure?: boolean };
        return [channelName, secure ? { ...rest, secure: true as const } : rest];
      }),
  ) as NotificationSettings['channels'];
  return {
    digestIntervalSeconds: raw.digestInterval ?? DEFAULT_DIGEST_INTERVAL_SECONDS,
    reminderBeforeSeconds: raw.reminderBefore ?? DEFAULT_REMINDER_BEFORE_SECONDS,
    channels,
  };
}

/** Applies the defaults and turns durations into seconds; set-like lists are sorted so order never matters. */
function normaliseEntitlement(raw: ParsedEntitlement): Entitlement {
  const asSet = (items: string[]): string[] => [...new Set(items)].sort();
  return {
    id: raw.id,
    title: raw.title ?? raw.id,
    // Optional text only when given: a key that is absent keeps older policies' hashes.
    ...(raw.description ? { description: raw.description } : {}),
    connector: raw.connector,
    scope: raw.scope,
    eligible: asSet(raw.eligible),
    maxDurationSeconds: raw.maxDuration,
    requires: {
      justification: raw.requires?.justification ?? true,
      ticketPattern: raw.requires?.ticketPattern ?? null,
      ...(raw.requires?.ticketHint ? { ticketHint: raw.requires.ticketHint } : {}),
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
    // Only for an entitlement workloads may request: a key that is absent keeps older policies' hashes.
    ...(raw.eligibleWorkloads
      ? {
          eligibleWorkloads: asSet(raw.eligibleWorkloads),
          workloadMaxDurationSeconds:
            raw.workloadMaxDuration ?? Math.min(raw.maxDuration, DEFAULT_WORKLOAD_MAX_SECONDS),
        }
      : {}),
  };
}
