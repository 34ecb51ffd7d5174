import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { DomainError, ErrorCode } from './errors.js';

// The policy model and its evaluation: plain data and pure functions. Reading a policy from YAML files, its
// schema and its validation live in libs/policy.

export type ConnectorConfig =
  | { type: 'jwt'; audience: string }
  | { type: 'postgres'; urlEnv: string }
  | { type: 'ssh'; caKeyEnv?: string }
  /** `allowInsecureHttp` is present (true) only when the file says so, so the hashes of other policies hold. */
  | { type: 'webhook'; url: string; secretEnv: string; allowInsecureHttp?: true };

/** Every connector kind (a grant's `connectorType`); the record makes the compiler check the list is whole. */
export const CONNECTOR_KINDS = Object.keys({
  jwt: true,
  postgres: true,
  ssh: true,
  webhook: true,
} satisfies Record<ConnectorConfig['type'], true>) as Array<ConnectorConfig['type']>;

export interface Entitlement {
  id: string;
  title: string;
  /** Present only when the policy gives one, so the hashes of policies without it hold. */
  description?: string;
  connector: string;
  scope: Record<string, unknown>;
  /** Group names whose members may request it. */
  eligible: string[];
  maxDurationSeconds: number;
  /** `ticketPattern` is compiled as `new RegExp(ticketPattern)` (no flags); null means no ticket is asked for. */
  /** `ticketHint` (the format in words) is present only when the policy gives one. */
  requires: { justification: boolean; ticketPattern: string | null; ticketHint?: string };
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
  /**
   * Workload ids (issue 21) that may request it, sorted; present only when the policy names some, so the
   * hashes of other policies hold. Such an entitlement always needs a human approval (checked at load).
   */
  eligibleWorkloads?: string[];
  /** A workload's cap (≤ maxDurationSeconds); present exactly when eligibleWorkloads is. */
  workloadMaxDurationSeconds?: number;
}

/**
 * A non-human requester (issue 21): a pipeline or agent that proves who it is with an OIDC token of its
 * issuer, for the audience, whose `sub` matches the pattern. It can request, wait, activate and cancel; never
 * approve, deny or break glass. Its owner group is accountable for it and is told about its requests.
 */
export interface Workload {
  id: string;
  title: string;
  /** The token's `iss`, exactly. */
  issuer: string;
  /** The token's `aud` must contain it. */
  audience: string;
  /** A glob over `sub`: `*` matches within one `:`-separated part, `**` matches anything. */
  subject: string;
  ownerGroup: string;
  /** Where the issuer's keys are; absent: the `jwks_uri` of its OpenID discovery document. */
  jwksUri?: string;
}

/** The username a workload's requests are filed under; a person's username cannot hold ":". */
export function workloadUsername(workloadId: string): string {
  return `${WORKLOAD_PREFIX}${workloadId}`;
}
const WORKLOAD_PREFIX = 'workload:';

/** Whether `sub` matches a workload's subject pattern (`*` within a `:`-part, `**` across parts). */
export function subjectMatches(pattern: string, sub: string): boolean {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    if (pattern.startsWith('**', i)) {
      source += '.*';
      i++;
    } else if (pattern[i] === '*') source += '[^:]*';
    else source += pattern[i].replace(/[.+?^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 's').test(sub);
}

/** The workload a policy declares under this id. */
export function findWorkload(policy: Policy, id: string): Workload | undefined {
  return policy.workloads?.find((workload) => workload.id === id);
}

/** Policy-wide settings (the `settings:` mapping); absent when no file declares it, so older hashes hold. */
export interface PolicySettings {
  /** After a recovery invite is used, the user's approvals do not count toward quorum for this long. */
  recoveryCooldownSeconds: number;
}

/** A notification channel (issue 18); secrets are named environment variables, never in the file. */
export type NotificationChannelConfig =
  | {
      type: 'smtp';
      host: string;
      port: number;
      from: string;
      /** TLS from the first byte (port 465); otherwise STARTTLS when the server offers it. */
      secure?: true;
      userEnv?: string;
      passwordEnv?: string;
      events?: string[];
    }
  /** Slack-compatible incoming webhook: its URL is the secret, so it comes from the environment. */
  | { type: 'slack'; urlEnv: string; events?: string[] }
  /** Signed as the webhook connector signs (X-JIT-Signature over "<timestamp>.<body>"). */
  | { type: 'webhook'; url: string; secretEnv: string; events?: string[] };

/** The `notifications:` mapping; absent when no file declares it, so older hashes hold. */
export interface NotificationSettings {
  /** Several requests pending for one approver within this interval make one digest. */
  digestIntervalSeconds: number;
  /** One quiet reminder to approvers who have not decided, this long before a request's pending deadline. */
  reminderBeforeSeconds: number;
  channels: Record<string, NotificationChannelConfig>;
}

export interface Policy {
  groups: Record<string, string[]>;
  connectors: Record<string, ConnectorConfig>;
  entitlements: Entitlement[];
  settings?: PolicySettings;
  notifications?: NotificationSettings;
  /** Present only when some file declares `workloads:`, so older hashes hold (issue 21). */
  workloads?: Workload[];
}

/** Self-service skips human approval, so its grants stay short whatever the configured hard cap. */
export const SELF_SERVICE_MAX_SECONDS = 60 * 60;
/** Break-glass skips approval up front (it is reviewed afterwards), so its grants stay short too. */
export const BREAK_GLASS_MAX_SECONDS = 60 * 60;
/** How long an approved (or self-service) request may wait for its activation, unless the policy says. */
export const DEFAULT_ACTIVATION_WINDOW_SECONDS = 15 * 60;

/** The quorum cool-down after a recovery when the policy sets none (DESIGN §5). */
export const DEFAULT_RECOVERY_COOLDOWN_SECONDS = 24 * 60 * 60;

/** Notification digest interval when the policy sets none (issue 18). */
export const DEFAULT_DIGEST_INTERVAL_SECONDS = 10 * 60;
/** How long before a pending deadline approvers get their one reminder, unless the policy says. */
export const DEFAULT_REMINDER_BEFORE_SECONDS = 15 * 60;

/** Hosts plain http:// may reach without a flag: this machine only (tests, a local issuer or receiver). */
export const LOCAL_HOSTS: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Whether `url` is https://, or plain http:// to this machine. */
export function isHttpsOrLocal(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOCAL_HOSTS.has(url.hostname));
}

/** What a username looks like, here and wherever users are created. */
export const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

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

/** Whether `username` may request it: a person through an eligible group, a workload when it is named. */
export function isEligible(policy: Policy, entitlement: Entitlement, username: string): boolean {
  if (username.startsWith(WORKLOAD_PREFIX))
    return entitlement.eligibleWorkloads?.includes(username.slice(WORKLOAD_PREFIX.length)) ?? false;
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
