import path from 'node:path';
import { z } from 'zod';
import { parseAuditWitnesses, type AuditWitnessConfig } from './audit-witnesses.js';

const MASTER_KEY_BYTES = 32;
/** Introspection client secrets: long enough that guessing is infeasible without any lockout. */
const MIN_CLIENT_SECRET_LENGTH = 32;

const booleanFlag = z
  .enum(['true', 'false', '1', '0'])
  .transform((value) => value === 'true' || value === '1');

const positiveSeconds = z.coerce.number().int().positive();

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }),
  MIGRATION_DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  ALLOW_PRIVILEGED_DATABASE_ROLE: booleanFlag.default(false),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }),
  REDIS_SENTINELS: z
    .string()
    .regex(/^[A-Za-z0-9.-]+:[0-9]{1,5}(,[A-Za-z0-9.-]+:[0-9]{1,5})*$/, {
      message: 'must be a comma-separated list of host:port (the Sentinels)',
    })
    .optional(),
  REDIS_SENTINEL_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .default('mymaster'),
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  POLICY_DIR: z.string().min(1).default('policies'),
  POLICY_HARD_MAX_DURATION: positiveSeconds.default(8 * 3600),
  WEB_DIR: z.string().min(1).optional(),
  BROKER_MASTER_KEY: z.string().refine((value) => Buffer.from(value, 'base64').length === MASTER_KEY_BYTES, {
    message: `must be ${MASTER_KEY_BYTES} random bytes, base64-encoded`,
  }),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('jit'),
  SWEEP_INTERVAL_SECONDS: positiveSeconds.default(15),
  CHECKPOINT_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(300),
  AUDIT_WITNESSES: z.string().optional(),
  INTROSPECTION_CLIENTS: z
    .string()
    .regex(/^([A-Za-z0-9_.-]+:[^,\s]+)(,[A-Za-z0-9_.-]+:[^,\s]+)*$/, {
      message: 'must be a comma-separated list of client_id:secret',
    })
    .superRefine((value, context) => {
      // Client ids are not secret and the right secret is never locked out, so the secret alone must make
      // guessing infeasible.
      const short = value
        .split(',')
        .filter(
          (pair) => pair.includes(':') && pair.length - pair.indexOf(':') - 1 < MIN_CLIENT_SECRET_LENGTH,
        )
        .map((pair) => pair.slice(0, pair.indexOf(':')));
      if (short.length === 0) return;
      context.addIssue({
        code: 'custom',
        message:
          `has a secret shorter than ${MIN_CLIENT_SECRET_LENGTH} characters for client ${short.join(', ')}: ` +
          'use a random one, e.g. openssl rand -base64 32',
      });
    })
    .optional(),
  RP_ID: z
    .string()
    .regex(/^[a-z0-9.-]+$/, { message: 'must be a host name (the WebAuthn relying-party id)' })
    .optional(),
  ALLOWED_ORIGINS: z
    .string()
    .regex(/^https?:\/\/[^,\s/]+(,https?:\/\/[^,\s/]+)*$/, {
      message: 'must be a comma-separated list of origins (scheme://host[:port], no path)',
    })
    .optional(),
  ALLOW_INSECURE_HTTP: booleanFlag.default(false),
  TRUST_PROXY: z
    .string()
    .regex(
      /^(false|[0-9]{1,2}|(loopback|linklocal|uniquelocal|[0-9a-fA-F.:/]+)(,(loopback|linklocal|uniquelocal|[0-9a-fA-F.:/]+))*)$/,
      {
        message: 'must be false, a hop count, or a comma-separated list of proxy addresses/CIDRs',
      },
    )
    .default('false'),
  SESSION_IDLE_SECONDS: positiveSeconds.default(15 * 60),
  SESSION_ABSOLUTE_SECONDS: positiveSeconds.default(12 * 3600),
  INVITE_TTL_SECONDS: positiveSeconds.default(24 * 3600),
  STEP_UP_TTL_SECONDS: positiveSeconds.default(120),
  STEP_UP_MAX_FAILURES: positiveSeconds.default(5),
  STEP_UP_FAILURE_WINDOW_SECONDS: positiveSeconds.default(15 * 60),
  STEP_UP_LOCK_SECONDS: positiveSeconds.default(15 * 60),
  MAX_OPEN_REQUESTS_PER_ENTITLEMENT: positiveSeconds.default(1),
  MAX_OPEN_REQUESTS: positiveSeconds.default(5),
  REQUEST_RATE_LIMIT: positiveSeconds.default(20),
  REQUEST_RATE_WINDOW_SECONDS: positiveSeconds.default(3600),
  DENIAL_COOLDOWN_SECONDS: positiveSeconds.default(15 * 60),
  DENIAL_LOCKOUT_COUNT: positiveSeconds.default(3),
  DENIAL_LOCKOUT_WINDOW_SECONDS: positiveSeconds.default(24 * 3600),
  RUBBER_STAMP_SECONDS: positiveSeconds.default(10),
  IP_RATE_LIMIT: positiveSeconds.default(300),
  IP_RATE_WINDOW_SECONDS: positiveSeconds.default(15 * 60),
  INTROSPECTION_FAILURE_LIMIT_PER_IP: positiveSeconds.default(20),
  INTROSPECTION_FAILURE_LIMIT_PER_CLIENT: positiveSeconds.default(100),
  INTROSPECTION_FAILURE_WINDOW_SECONDS: positiveSeconds.default(15 * 60),
  METRICS_TOKEN: z.string().min(16, { message: 'must be at least 16 characters' }).optional(),
  WORKER_METRICS_PORT: z.coerce
    .number()
    .int()
    .min(1, { message: "must be 1-65535; leave it unset to turn the worker's metrics endpoint off" })
    .max(65535)
    .optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  API_DOCS: booleanFlag.default(true),
  REVOKE_BACKOFF_MS: positiveSeconds.default(1000),
  WEBHOOK_TIMEOUT_MS: positiveSeconds.default(5000),
  NOTIFY_POLL_INTERVAL_MS: positiveSeconds.default(2000),
  NOTIFY_ATTEMPTS: positiveSeconds.default(6),
  NOTIFY_BACKOFF_MS: positiveSeconds.default(2000),
  SHUTDOWN_GRACE_MS: positiveSeconds.default(10_000),
  SSE_MAX_STREAMS_PER_USER: positiveSeconds.default(8),
  SSE_MAX_STREAMS: positiveSeconds.default(2000),
  SSE_HEARTBEAT_SECONDS: positiveSeconds.default(15),
});

/** The broker's and worker's whole configuration, validated once at boot. */
export interface AppConfig {
  env: 'development' | 'production' | 'test';
  /** The runtime role: SELECT/INSERT on audit_events, owns nothing (libs/db/runtime-privileges.ts). */
  databaseUrl: string;
  /** The owner role, which runs migrations (at boot when set); null: the schema must already be current. */
  migrationDatabaseUrl: string | null;
  /** Set only by the explicit ALLOW_PRIVILEGED_DATABASE_ROLE=true: boot as a role that can rewrite audit_events; logged at boot. */
  allowPrivilegedDatabaseRole: boolean;
  redisUrl: string;
  /**
   * Redis through Sentinel (REDIS_SENTINELS): the master named `name`, with REDIS_URL's credentials, database
   * and TLS but not its host; null: REDIS_URL's host.
   */
  redisSentinel: RedisSentinel | null;
  http: { host: string; port: number; publicUrl: string };
  policy: { dir: string; hardMaxDurationSeconds: number };
  /** The built web UI (`npm run build` writes it to dist/web) that the broker serves; absolute. */
  webDir: string;
  /** Encrypts signing keys at rest (AES-256-GCM). Required everywhere: `npm start` generates one into .data/. */
  masterKey: Buffer;
  queuePrefix: string;
  sweepIntervalSeconds: number;
  /** How often the worker signs the audit chain head (an audit.checkpoint event), when it has moved; 0 turns it off. */
  checkpointIntervalSeconds: number;
  /** tlog-witnesses each signed checkpoint of the audit log is submitted to (AUDIT_WITNESSES); empty: none. */
  auditWitnesses: AuditWitnessConfig[];
  introspectionClients: ReadonlyMap<string, string>;
  /** WebAuthn relying party and the origins allowed in ceremonies and on state-changing requests. */
  webauthn: { rpId: string; rpName: string; origins: string[] };
  /** Session cookie `Secure` flag: on unless the public URL is plain http (localhost, or ALLOW_INSECURE_HTTP). */
  secureCookies: boolean;
  /**
   * Express `trust proxy`: false (the client address is the socket's), a hop count, or proxy addresses.
   * Behind a load balancer, set it so per-IP limits see clients rather than the balancer.
   */
  trustProxy: boolean | number | string;
  /** Set only by the explicit ALLOW_INSECURE_HTTP=true; logged at boot. */
  insecureHttp: boolean;
  sessions: { idleSeconds: number; absoluteSeconds: number };
  inviteTtlSeconds: number;
  stepUp: { ttlSeconds: number; maxFailures: number; failureWindowSeconds: number; lockSeconds: number };
  /** Limits that keep a flood of requests from wearing approvers down (DESIGN §6, issue: anti-fatigue). */
  antiFatigue: {
    maxOpenPerEntitlement: number;
    maxOpen: number;
    requestLimit: number;
    requestWindowSeconds: number;
    denialCooldownSeconds: number;
    denialLockoutCount: number;
    denialLockoutWindowSeconds: number;
    rubberStampSeconds: number;
  };
  /** Per client IP: ceremonies and step-ups allowed per window (DESIGN §5: an office behind one address stays under it). */
  ipRateLimit: { limit: number; windowSeconds: number };
  /**
   * Failed client authentications at /api/introspect allowed per window from one address and for one
   * (configured) client id; past either, that address or client id gets 429 until the window ends.
   */
  introspectionLimit: { failuresPerAddress: number; failuresPerClient: number; windowSeconds: number };
  logLevel: string;
  /** Serve the OpenAPI document (/api/docs.json) and its Swagger UI (/api/docs); API_DOCS=false turns both off. */
  apiDocs: boolean;
  /** Bearer token Prometheus presents on GET /metrics; unset keeps /metrics shut. */
  metricsToken: string | null;
  /**
   * The worker's own scrape endpoint (`GET /metrics` on HOST:WORKER_METRICS_PORT, same METRICS_TOKEN);
   * null (unset) runs no endpoint. 0 is refused: it would mean a random port nobody scrapes.
   */
  workerMetricsPort: number | null;
  /** First retry delay of a failed revocation, doubled each attempt (with jitter) up to REVOKE_ATTEMPTS. */
  revokeBackoffMs: number;
  /** How long one webhook delivery may take (WEBHOOK_TIMEOUT_MS, default 5000). */
  webhookTimeoutMs: number;
  /**
   * Notifications (issue 18): the worker reads new audit events at least every `pollIntervalMs` (and at once
   * on a request event); each delivery gets `attempts` tries, backing off from `backoffMs`, doubling.
   */
  notify: { pollIntervalMs: number; attempts: number; backoffMs: number };
  /** On SIGTERM, how long the broker lets in-flight requests finish before it cuts them (default 10000). */
  shutdownGraceMs: number;
  /**
   * Live-update streams (GET /api/events) one broker holds: at most `maxStreamsPerUser` for one person and
   * `maxStreams` in all (429 past either); every `heartbeatSeconds` each is kept alive and its session checked.
   */
  liveUpdates: { maxStreamsPerUser: number; maxStreams: number; heartbeatSeconds: number };
  /** Secrets that policy connectors reference by environment variable name (`urlEnv`, `secretEnv`). */
  connectorSecret(name: string): string | undefined;
}

/** The Sentinels to ask for the current Redis master, and its name. */
export interface RedisSentinel {
  hosts: Array<{ host: string; port: number }>;
  name: string;
  password?: string;
}

/** Raised when the environment is missing or has a malformed variable; the message names each one. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

const CONNECTOR_SECRET_NAME = /^[A-Z][A-Z0-9_]*$/;

/** One line per failed variable, naming it: `X is required` or `X <what is wrong>`. */
function describeIssues(
  issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>,
  env: NodeJS.ProcessEnv,
): string[] {
  return issues.map((issue) => {
    const name = issue.path.map(String).join('.');
    return env[name] === undefined ? `${name} is required` : `${name} ${issue.message}`;
  });
}

/** Prints the problems as a ConfigError does and stops the process. */
function exitWith(problems: string[]): never {
  console.error(new ConfigError(problems).message);
  process.exit(1);
}

/** PUBLIC_URL, or http://localhost:PORT when unset. */
function publicUrlOf(values: { PUBLIC_URL?: string; PORT: number }): URL {
  return new URL(values.PUBLIC_URL ?? `http://localhost:${values.PORT}`);
}

/** Builds the validated config from an environment (process.env by default). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(describeIssues(parsed.error.issues, env));
  }
  const values = parsed.data;
  const problems: string[] = [];
  const publicUrl = publicUrlOf(values);
  const rpId = values.RP_ID ?? publicUrl.hostname;
  const origins = values.ALLOWED_ORIGINS?.split(',') ?? [publicUrl.origin];
  const insecureOrigins = origins.filter(
    (origin) => new URL(origin).protocol === 'http:' && !LOOPBACK_HOSTS.has(new URL(origin).hostname),
  );
  if (insecureOrigins.length > 0 && !values.ALLOW_INSECURE_HTTP) {
    problems.push(
      `ALLOWED_ORIGINS/PUBLIC_URL use plain http outside localhost (${insecureOrigins.join(', ')}): ` +
        'serve over https, or set ALLOW_INSECURE_HTTP=true knowingly',
    );
  }
  for (const origin of origins) {
    const host = new URL(origin).hostname;
    if (host !== rpId && !host.endsWith(`.${rpId}`)) {
      problems.push(`RP_ID ${rpId} is not a registrable suffix of the allowed origin ${origin}`);
    }
  }
  if (values.SESSION_IDLE_SECONDS > values.SESSION_ABSOLUTE_SECONDS) {
    problems.push('SESSION_IDLE_SECONDS must not exceed SESSION_ABSOLUTE_SECONDS');
  }
  const witnesses = parseAuditWitnesses(values.AUDIT_WITNESSES);
  problems.push(...witnesses.problems);
  if (problems.length > 0) throw new ConfigError(problems);

  const introspectionClients = new Map<string, string>();
  for (const pair of values.INTROSPECTION_CLIENTS?.split(',') ?? []) {
    const separator = pair.indexOf(':');
    introspectionClients.set(pair.slice(0, separator), pair.slice(separator + 1));
  }
  return {
    env: values.NODE_ENV,
    databaseUrl: values.DATABASE_URL,
    migrationDatabaseUrl: values.MIGRATION_DATABASE_URL ?? null,
    allowPrivilegedDatabaseRole: values.ALLOW_PRIVILEGED_DATABASE_ROLE,
    redisUrl: values.REDIS_URL,
    redisSentinel:
      values.REDIS_SENTINELS === undefined
        ? null
        : {
            hosts: values.REDIS_SENTINELS.split(',').map((pair) => {
              const separator = pair.lastIndexOf(':');
              return { host: pair.slice(0, separator), port: Number(pair.slice(separator + 1)) };
            }),
            name: values.REDIS_SENTINEL_NAME,
            password: values.REDIS_SENTINEL_PASSWORD,
          },
    http: {
      host: values.HOST,
      port: values.PORT,
      publicUrl: publicUrl.href.replace(/\/$/, ''),
    },
    policy: { dir: values.POLICY_DIR, hardMaxDurationSeconds: values.POLICY_HARD_MAX_DURATION },
    webDir: path.resolve(values.WEB_DIR ?? path.join('dist', 'web')),
    masterKey: Buffer.from(values.BROKER_MASTER_KEY, 'base64'),
    queuePrefix: values.QUEUE_PREFIX,
    sweepIntervalSeconds: values.SWEEP_INTERVAL_SECONDS,
    checkpointIntervalSeconds: values.CHECKPOINT_INTERVAL_SECONDS,
    auditWitnesses: witnesses.witnesses,
    introspectionClients,
    webauthn: { rpId, rpName: 'JIT elevation broker', origins },
    secureCookies: origins.every((origin) => new URL(origin).protocol === 'https:'),
    insecureHttp: values.ALLOW_INSECURE_HTTP,
    trustProxy:
      values.TRUST_PROXY === 'false'
        ? false
        : /^[0-9]+$/.test(values.TRUST_PROXY)
          ? Number(values.TRUST_PROXY)
          : values.TRUST_PROXY,
    sessions: { idleSeconds: values.SESSION_IDLE_SECONDS, absoluteSeconds: values.SESSION_ABSOLUTE_SECONDS },
    inviteTtlSeconds: values.INVITE_TTL_SECONDS,
    stepUp: {
      ttlSeconds: values.STEP_UP_TTL_SECONDS,
      maxFailures: values.STEP_UP_MAX_FAILURES,
      failureWindowSeconds: values.STEP_UP_FAILURE_WINDOW_SECONDS,
      lockSeconds: values.STEP_UP_LOCK_SECONDS,
    },
    antiFatigue: {
      maxOpenPerEntitlement: values.MAX_OPEN_REQUESTS_PER_ENTITLEMENT,
      maxOpen: values.MAX_OPEN_REQUESTS,
      requestLimit: values.REQUEST_RATE_LIMIT,
      requestWindowSeconds: values.REQUEST_RATE_WINDOW_SECONDS,
      denialCooldownSeconds: values.DENIAL_COOLDOWN_SECONDS,
      denialLockoutCount: values.DENIAL_LOCKOUT_COUNT,
      denialLockoutWindowSeconds: values.DENIAL_LOCKOUT_WINDOW_SECONDS,
      rubberStampSeconds: values.RUBBER_STAMP_SECONDS,
    },
    ipRateLimit: { limit: values.IP_RATE_LIMIT, windowSeconds: values.IP_RATE_WINDOW_SECONDS },
    introspectionLimit: {
      failuresPerAddress: values.INTROSPECTION_FAILURE_LIMIT_PER_IP,
      failuresPerClient: values.INTROSPECTION_FAILURE_LIMIT_PER_CLIENT,
      windowSeconds: values.INTROSPECTION_FAILURE_WINDOW_SECONDS,
    },
    logLevel: values.LOG_LEVEL,
    apiDocs: values.API_DOCS,
    metricsToken: values.METRICS_TOKEN ?? null,
    workerMetricsPort: values.WORKER_METRICS_PORT ?? null,
    revokeBackoffMs: values.REVOKE_BACKOFF_MS,
    webhookTimeoutMs: values.WEBHOOK_TIMEOUT_MS,
    notify: {
      pollIntervalMs: values.NOTIFY_POLL_INTERVAL_MS,
      attempts: values.NOTIFY_ATTEMPTS,
      backoffMs: values.NOTIFY_BACKOFF_MS,
    },
    shutdownGraceMs: values.SHUTDOWN_GRACE_MS,
    liveUpdates: {
      maxStreamsPerUser: values.SSE_MAX_STREAMS_PER_USER,
      maxStreams: values.SSE_MAX_STREAMS,
      heartbeatSeconds: values.SSE_HEARTBEAT_SECONDS,
    },
    connectorSecret: (name) => (CONNECTOR_SECRET_NAME.test(name) ? env[name] : undefined),
  };
}

/** Loads the config or, on a ConfigError, prints it and stops the process. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): AppConfig {
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) exitWith(error.problems);
    throw error;
  }
}

/**
 * For `npm run migrate`: the owner role's URL (MIGRATION_DATABASE_URL) and the runtime role's (DATABASE_URL),
 * which it grants its privileges. Without MIGRATION_DATABASE_URL, DATABASE_URL migrates and nothing is granted.
 */
export function loadMigrationSettingsOrExit(env: NodeJS.ProcessEnv = process.env): {
  ownerUrl: string;
  runtimeUrl: string | null;
} {
  const schema = z.object({
    MIGRATION_DATABASE_URL: envSchema.shape.MIGRATION_DATABASE_URL,
    DATABASE_URL: env.MIGRATION_DATABASE_URL
      ? envSchema.shape.DATABASE_URL.optional()
      : envSchema.shape.DATABASE_URL,
  });
  const parsed = schema.safeParse(env);
  if (!parsed.success) exitWith(describeIssues(parsed.error.issues, env));
  const { MIGRATION_DATABASE_URL: ownerUrl, DATABASE_URL: runtimeUrl } = parsed.data;
  return ownerUrl
    ? { ownerUrl, runtimeUrl: runtimeUrl ?? null }
    : { ownerUrl: runtimeUrl!, runtimeUrl: null };
}

/** What `cli invite` needs: the database, the public URL the link points at, and the invite lifetime. */
export function loadInviteSettingsOrExit(env: NodeJS.ProcessEnv = process.env): {
  databaseUrl: string;
  migrationDatabaseUrl: string | null;
  publicUrl: string;
  ttlSeconds: number;
} {
  const schema = envSchema.pick({
    DATABASE_URL: true,
    MIGRATION_DATABASE_URL: true,
    PORT: true,
    PUBLIC_URL: true,
    INVITE_TTL_SECONDS: true,
  });
  const parsed = schema.safeParse(env);
  if (!parsed.success) exitWith(describeIssues(parsed.error.issues, env));
  const values = parsed.data;
  return {
    databaseUrl: values.DATABASE_URL,
    migrationDatabaseUrl: values.MIGRATION_DATABASE_URL ?? null,
    publicUrl: publicUrlOf(values).href.replace(/\/$/, ''),
    ttlSeconds: values.INVITE_TTL_SECONDS,
  };
}

/** What `cli keys rotate` needs: the database and the master key that seals signing keys. */
export function loadKeyRotationSettingsOrExit(env: NodeJS.ProcessEnv = process.env): {
  databaseUrl: string;
  migrationDatabaseUrl: string | null;
  masterKey: Buffer;
} {
  const parsed = envSchema
    .pick({ DATABASE_URL: true, MIGRATION_DATABASE_URL: true, BROKER_MASTER_KEY: true })
    .safeParse(env);
  if (!parsed.success) exitWith(describeIssues(parsed.error.issues, env));
  return {
    databaseUrl: parsed.data.DATABASE_URL,
    migrationDatabaseUrl: parsed.data.MIGRATION_DATABASE_URL ?? null,
    masterKey: Buffer.from(parsed.data.BROKER_MASTER_KEY, 'base64'),
  };
}

/** Nest injection token for the AppConfig object. */
export const APP_CONFIG = Symbol('APP_CONFIG');
