import { z } from 'zod';

const MASTER_KEY_BYTES = 32;

const booleanFlag = z
  .enum(['true', 'false', '1', '0'])
  .transform((value) => value === 'true' || value === '1');

const positiveSeconds = z.coerce.number().int().positive();

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  POLICY_DIR: z.string().min(1).default('policies'),
  POLICY_HARD_MAX_DURATION: positiveSeconds.default(8 * 3600),
  BROKER_MASTER_KEY: z.string().refine((value) => Buffer.from(value, 'base64').length === MASTER_KEY_BYTES, {
    message: `must be ${MASTER_KEY_BYTES} random bytes, base64-encoded`,
  }),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('jit'),
  SWEEP_INTERVAL_SECONDS: positiveSeconds.default(15),
  INTROSPECTION_CLIENTS: z
    .string()
    .regex(/^([A-Za-z0-9_.-]+:[^,\s]{16,})(,[A-Za-z0-9_.-]+:[^,\s]{16,})*$/, {
      message: 'must be a comma-separated list of client_id:secret, secrets of at least 16 characters',
    })
    .optional(),
  AUTH_TEST_IDENTITY_HEADER: booleanFlag.default(false),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** The broker's and worker's whole configuration, validated once at boot. */
export interface AppConfig {
  env: 'development' | 'production' | 'test';
  databaseUrl: string;
  redisUrl: string;
  http: { host: string; port: number; publicUrl: string };
  policy: { dir: string; hardMaxDurationSeconds: number };
  /** Encrypts signing keys at rest (AES-256-GCM). Required everywhere: `npm start` generates one into .data/. */
  masterKey: Buffer;
  queuePrefix: string;
  sweepIntervalSeconds: number;
  introspectionClients: ReadonlyMap<string, string>;
  /** Test-only identity from the `X-Test-User` header; refused outside NODE_ENV=test. */
  testIdentityHeader: boolean;
  logLevel: string;
  /** Secrets that policy connectors reference by environment variable name (`urlEnv`, `secretEnv`). */
  connectorSecret(name: string): string | undefined;
}

/** Raised when the environment is missing or has a malformed variable; the message names each one. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const CONNECTOR_SECRET_NAME = /^[A-Z][A-Z0-9_]*$/;

/** Builds the validated config from an environment (process.env by default). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = issue.path.join('.');
        return env[name] === undefined ? `${name} is required` : `${name} ${issue.message}`;
      }),
    );
  }
  const values = parsed.data;
  const problems: string[] = [];
  if (values.AUTH_TEST_IDENTITY_HEADER && values.NODE_ENV !== 'test') {
    problems.push('AUTH_TEST_IDENTITY_HEADER may only be set when NODE_ENV=test');
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const introspectionClients = new Map<string, string>();
  for (const pair of values.INTROSPECTION_CLIENTS?.split(',') ?? []) {
    const separator = pair.indexOf(':');
    introspectionClients.set(pair.slice(0, separator), pair.slice(separator + 1));
  }
  return {
    env: values.NODE_ENV,
    databaseUrl: values.DATABASE_URL,
    redisUrl: values.REDIS_URL,
    http: {
      host: values.HOST,
      port: values.PORT,
      publicUrl: (values.PUBLIC_URL ?? `http://localhost:${values.PORT}`).replace(/\/$/, ''),
    },
    policy: { dir: values.POLICY_DIR, hardMaxDurationSeconds: values.POLICY_HARD_MAX_DURATION },
    masterKey: Buffer.from(values.BROKER_MASTER_KEY, 'base64'),
    queuePrefix: values.QUEUE_PREFIX,
    sweepIntervalSeconds: values.SWEEP_INTERVAL_SECONDS,
    introspectionClients,
    testIdentityHeader: values.AUTH_TEST_IDENTITY_HEADER,
    logLevel: values.LOG_LEVEL,
    connectorSecret: (name) => (CONNECTOR_SECRET_NAME.test(name) ? env[name] : undefined),
  };
}

/** Loads the config or, on a ConfigError, prints it and stops the process. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): AppConfig {
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}

/** Only DATABASE_URL, for `npm run migrate`, which needs nothing else. */
export function loadDatabaseUrlOrExit(env: NodeJS.ProcessEnv = process.env): string {
  const parsed = envSchema.shape.DATABASE_URL.safeParse(env.DATABASE_URL);
  if (!parsed.success) {
    console.error(
      `Invalid configuration:\n  - DATABASE_URL ${env.DATABASE_URL === undefined ? 'is required' : 'must be a postgres:// URL'}`,
    );
    process.exit(1);
  }
  return parsed.data;
}

/** Nest injection token for the AppConfig object. */
export const APP_CONFIG = Symbol('APP_CONFIG');
