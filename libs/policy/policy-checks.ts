import {
  BREAK_GLASS_MAX_SECONDS,
  isHttpsOrLocal,
  membersOf,
  SELF_SERVICE_MAX_SECONDS,
  type ConnectorConfig,
  type Entitlement,
  type Policy,
  type Workload,
} from '../domain/policy.js';
import { formatDuration } from './duration.js';
import type { PolicyProblem } from './policy-error.js';
import { indexIn, problemAt, type Origin, type YamlPath } from './yaml-lines.js';

// The checks that need the whole (merged) policy, or that the schema cannot express.

/** Limits that come from config rather than from the policy files. */
export interface PolicyLimits {
  hardMaxDurationSeconds: number;
}

/** Whether a webhook would send grants over plain http:// to another machine. */
function isInsecureWebhook(config: ConnectorConfig): boolean {
  if (config.type !== 'webhook') return false;
  const url = new URL(config.url);
  return !isHttpsOrLocal(url);
}

/** A webhook over plain http:// outside localhost is refused unless the policy opts in for that connector. */
export function checkConnector(name: string, config: ConnectorConfig, origin: Origin): PolicyProblem[] {
  if (!isInsecureWebhook(config) || (config.type === 'webhook' && config.allowInsecureHttp)) return [];
  const reason =
    `connector "${name}" url is plain http:// to a host other than localhost; ` +
    'use https://, or set allowInsecureHttp: true on the connector to accept it';
  return [problemAt({ source: origin.source, path: [...origin.path, 'url'] }, reason)];
}

/** What a load should log loudly: each connector the policy lets send over plain http:// to another host. */
export function policyWarnings(policy: Policy): string[] {
  return Object.entries(policy.connectors)
    .filter(([, config]) => isInsecureWebhook(config))
    .map(
      ([name]) =>
        `connector "${name}" sends webhooks over plain http:// outside localhost (allowInsecureHttp: true)`,
    );
}

/** The checks that need the whole policy, or that the schema cannot express. */
export function checkEntitlement(
  policy: Policy,
  entitlement: Entitlement,
  origin: Origin,
  limits: PolicyLimits,
): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const at: Report = (path, reason) =>
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

  checkApprovalMode(policy, entitlement, origin, at);

  const { approval } = entitlement;
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

  checkLimits(entitlement, limits, at);
  return problems;
}

/** Where a check reports: a path below the entitlement and the reason. */
type Report = (path: YamlPath, reason: string) => void;

/** Exactly one of approval-gated (≥ 1 approval), breakGlass or selfService; workloads only approval-gated. */
function checkApprovalMode(policy: Policy, entitlement: Entitlement, origin: Origin, at: Report): void {
  const subject = `entitlement "${entitlement.id}"`;
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
  if (entitlement.eligibleWorkloads) checkWorkloadEntitlement(policy, entitlement, origin, at);
  else if (!breakGlass && !selfService && (!approval || approval.approvals < 1))
    at(
      approval ? ['approval', 'approvals'] : ['id'],
      `${subject} needs at least 1 approval unless it declares breakGlass or selfService: true`,
    );
}

/**
 * An entitlement workloads may request: only workloads the policy declares, always behind at least one human
 * approval (a workload never approves, so nobody would otherwise look), and a workload cap within maxDuration.
 */
function checkWorkloadEntitlement(
  policy: Policy,
  entitlement: Entitlement,
  origin: Origin,
  at: Report,
): void {
  const subject = `entitlement "${entitlement.id}"`;
  for (const workloadId of entitlement.eligibleWorkloads ?? [])
    if (!policy.workloads?.some((workload) => workload.id === workloadId))
      at(
        ['eligibleWorkloads', indexIn(origin, ['eligibleWorkloads'], workloadId)],
        `${subject} lists unknown workload "${workloadId}" in eligibleWorkloads`,
      );

  const { approval, breakGlass, selfService } = entitlement;
  const [path, why]: [YamlPath, string] | [null, null] = selfService
    ? [['selfService'], 'is selfService']
    : breakGlass
      ? [['breakGlass'], 'is breakGlass']
      : !approval
        ? [['eligibleWorkloads'], 'has no approval']
        : approval.approvals < 1
          ? [['approval', 'approvals'], 'requires 0 approvals']
          : [null, null];
  if (path)
    at(
      path,
      `${subject} lists eligibleWorkloads but ${why}; a workload always needs at least one human approval`,
    );

  const workloadMax = entitlement.workloadMaxDurationSeconds;
  if (workloadMax !== undefined && workloadMax > entitlement.maxDurationSeconds)
    at(
      ['workloadMaxDuration'],
      `${subject} workloadMaxDuration ${formatDuration(workloadMax)} exceeds its maxDuration of ${formatDuration(entitlement.maxDurationSeconds)}`,
    );
}

/** A workload's owner group must exist: it is accountable for the workload and told about its requests. */
export function checkWorkload(policy: Policy, workload: Workload, origin: Origin): PolicyProblem[] {
  if (Object.hasOwn(policy.groups, workload.ownerGroup)) return [];
  const reason = `workload "${workload.id}" names unknown group "${workload.ownerGroup}" as ownerGroup`;
  return [problemAt({ source: origin.source, path: [...origin.path, 'ownerGroup'] }, reason)];
}

/** Two workloads with the same issuer, audience and subject pattern: a token would prove to be either. */
export function checkWorkloadsDistinct(workloads: { workload: Workload; origin: Origin }[]): PolicyProblem[] {
  const seen = new Map<string, { workload: Workload; origin: Origin }>();
  const problems: PolicyProblem[] = [];
  for (const entry of workloads) {
    const { issuer, audience, subject } = entry.workload;
    const key = JSON.stringify([issuer, audience, subject]);
    const first = seen.get(key);
    if (!first) {
      seen.set(key, entry);
      continue;
    }
    const firstAt = problemAt({ source: first.origin.source, path: [...first.origin.path, 'subject'] }, '');
    const reason =
      `workload "${entry.workload.id}" has the same issuer, audience and subject as workload ` +
      `"${first.workload.id}" (${firstAt.file}:${firstAt.line ?? '?'}); a token would match both`;
    problems.push(
      problemAt({ source: entry.origin.source, path: [...entry.origin.path, 'subject'] }, reason),
    );
  }
  return problems;
}

/** The duration caps (configured, self-service, break-glass) and a ticket pattern that compiles. */
function checkLimits(entitlement: Entitlement, limits: PolicyLimits, at: Report): void {
  const subject = `entitlement "${entitlement.id}"`;
  const { selfService, breakGlass } = entitlement;
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

function isValidRegExp(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}
