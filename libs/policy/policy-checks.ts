import {
  BREAK_GLASS_MAX_SECONDS,
  membersOf,
  SELF_SERVICE_MAX_SECONDS,
  type ConnectorConfig,
  type Entitlement,
  type Policy,
} from '../domain/policy.js';
import { formatDuration } from './duration.js';
import type { PolicyProblem } from './policy-error.js';
import { indexIn, problemAt, type Origin, type YamlPath } from './yaml-lines.js';

// The checks that need the whole (merged) policy, or that the schema cannot express.

/** Limits that come from config rather than from the policy files. */
export interface PolicyLimits {
  hardMaxDurationSeconds: number;
}

/** Hosts a plain http:// webhook may reach without `allowInsecureHttp: true`. */
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Whether a webhook would send grants over plain http:// to another machine. */
function isInsecureWebhook(config: ConnectorConfig): boolean {
  if (config.type !== 'webhook') return false;
  const url = new URL(config.url);
  return url.protocol === 'http:' && !LOCAL_HOSTS.has(url.hostname);
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

  checkLimits(entitlement, limits, at);
  return problems;
}

/** Where a check reports: a path below the entitlement and the reason. */
type Report = (path: YamlPath, reason: string) => void;

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
