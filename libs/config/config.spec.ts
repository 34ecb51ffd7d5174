import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from './config.js';

const VALID = {
  DATABASE_URL: 'postgres://broker:secret@db.internal:5432/broker',
  REDIS_URL: 'redis://cache.internal:6379/0',
  BROKER_MASTER_KEY: randomBytes(32).toString('base64'),
};

function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('builds a typed config with safe defaults', () => {
    const config = loadConfig(VALID);
    expect(config.env).toBe('development');
    expect(config.http).toEqual({ host: '127.0.0.1', port: 3000, publicUrl: 'http://localhost:3000' });
    expect(config.webauthn).toEqual({
      rpId: 'localhost',
      rpName: 'JIT elevation broker',
      origins: ['http://localhost:3000'],
    });
    expect(config.secureCookies).toBe(false);
    expect(config.sessions).toEqual({ idleSeconds: 900, absoluteSeconds: 43_200 });
    expect(config.introspectionClients.size).toBe(0);
    expect(config.masterKey).toHaveLength(32);
    expect(config.policy).toEqual({ dir: 'policies', hardMaxDurationSeconds: 8 * 3600 });
  });

  it('names each missing variable', () => {
    expect(problemsOf({})).toEqual([
      'DATABASE_URL is required',
      'REDIS_URL is required',
      'BROKER_MASTER_KEY is required',
    ]);
  });

  it('names each malformed variable', () => {
    const problems = problemsOf({
      ...VALID,
      DATABASE_URL: 'mysql://x',
      PORT: 'eighty',
      BROKER_MASTER_KEY: 'c2hvcnQ=',
      INTROSPECTION_CLIENTS: 'rs:short',
    });
    expect(problems.map((problem) => problem.split(' ')[0])).toEqual([
      'DATABASE_URL',
      'PORT',
      'BROKER_MASTER_KEY',
      'INTROSPECTION_CLIENTS',
    ]);
    expect(problems[2]).toBe('BROKER_MASTER_KEY must be 32 random bytes, base64-encoded');
  });

  it('refuses introspection client secrets shorter than 32 characters, naming the client, not the secret', () => {
    const long = 'b'.repeat(32);
    expect(problemsOf({ ...VALID, INTROSPECTION_CLIENTS: `rs1:${long},rs2:${'a'.repeat(31)}` })).toEqual([
      'INTROSPECTION_CLIENTS has a secret shorter than 32 characters for client rs2: use a random one, ' +
        'e.g. openssl rand -base64 32',
    ]);
    expect(problemsOf({ ...VALID, INTROSPECTION_CLIENTS: `rs1:${long},rs2` })[0]).toBe(
      'INTROSPECTION_CLIENTS must be a comma-separated list of client_id:secret',
    );
  });

  it('refuses plain http outside localhost unless ALLOW_INSECURE_HTTP=true says so', () => {
    expect(problemsOf({ ...VALID, PUBLIC_URL: 'http://broker.example.com' })).toEqual([
      'ALLOWED_ORIGINS/PUBLIC_URL use plain http outside localhost (http://broker.example.com): serve over https, or set ALLOW_INSECURE_HTTP=true knowingly',
    ]);
    const insecure = loadConfig({
      ...VALID,
      PUBLIC_URL: 'http://broker.example.com',
      ALLOW_INSECURE_HTTP: 'true',
    });
    expect(insecure.insecureHttp).toBe(true);
    expect(insecure.secureCookies).toBe(false);
    const secure = loadConfig({ ...VALID, PUBLIC_URL: 'https://jit.example.com' });
    expect(secure.webauthn.rpId).toBe('jit.example.com');
    expect(secure.webauthn.origins).toEqual(['https://jit.example.com']);
    expect(secure.secureCookies).toBe(true);
  });

  it('takes RP_ID and ALLOWED_ORIGINS explicitly, and refuses an rpID that does not cover an origin', () => {
    const config = loadConfig({
      ...VALID,
      PUBLIC_URL: 'https://jit.example.com',
      RP_ID: 'example.com',
      ALLOWED_ORIGINS: 'https://jit.example.com,https://admin.example.com:8443',
    });
    expect(config.webauthn.rpId).toBe('example.com');
    expect(config.webauthn.origins).toEqual(['https://jit.example.com', 'https://admin.example.com:8443']);
    expect(problemsOf({ ...VALID, PUBLIC_URL: 'https://jit.example.com', RP_ID: 'other.org' })).toEqual([
      'RP_ID other.org is not a registrable suffix of the allowed origin https://jit.example.com',
    ]);
    expect(problemsOf({ ...VALID, ALLOWED_ORIGINS: 'https://jit.example.com/path' })[0]).toMatch(
      /^ALLOWED_ORIGINS /,
    );
  });

  it('reads TRUST_PROXY as false, a hop count or proxy addresses', () => {
    expect(loadConfig(VALID).trustProxy).toBe(false);
    expect(loadConfig({ ...VALID, TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ ...VALID, TRUST_PROXY: 'loopback,10.0.0.0/8' }).trustProxy).toBe(
      'loopback,10.0.0.0/8',
    );
    expect(problemsOf({ ...VALID, TRUST_PROXY: 'everyone' })[0]).toMatch(/^TRUST_PROXY /);
  });

  it('keeps the owner URL apart and refuses a privileged database role unless told otherwise', () => {
    const defaults = loadConfig(VALID);
    expect(defaults.migrationDatabaseUrl).toBeNull();
    expect(defaults.allowPrivilegedDatabaseRole).toBe(false);
    const owner = 'postgres://broker_owner:secret@db.internal:5432/broker';
    const explicit = loadConfig({
      ...VALID,
      MIGRATION_DATABASE_URL: owner,
      ALLOW_PRIVILEGED_DATABASE_ROLE: 'true',
    });
    expect(explicit.migrationDatabaseUrl).toBe(owner);
    expect(explicit.allowPrivilegedDatabaseRole).toBe(true);
    expect(problemsOf({ ...VALID, MIGRATION_DATABASE_URL: 'mysql://x' })[0]).toMatch(
      /^MIGRATION_DATABASE_URL /,
    );
  });

  it('refuses an idle limit longer than the absolute one', () => {
    expect(problemsOf({ ...VALID, SESSION_IDLE_SECONDS: '7200', SESSION_ABSOLUTE_SECONDS: '3600' })).toEqual([
      'SESSION_IDLE_SECONDS must not exceed SESSION_ABSOLUTE_SECONDS',
    ]);
  });

  it('parses introspection clients and resolves connector secrets by name only', () => {
    const secret = 'a'.repeat(32);
    const config = loadConfig({
      ...VALID,
      INTROSPECTION_CLIENTS: `rs1:${secret},rs2:${secret}b`,
      DEMO_URL: 'x',
    });
    expect([...config.introspectionClients]).toEqual([
      ['rs1', secret],
      ['rs2', `${secret}b`],
    ]);
    expect(config.connectorSecret('DEMO_URL')).toBe('x');
    expect(config.connectorSecret('lowercase')).toBeUndefined();
  });

  it('serves the API description unless API_DOCS=false, and refuses anything but a boolean', () => {
    expect(loadConfig(VALID).apiDocs).toBe(true);
    expect(loadConfig({ ...VALID, API_DOCS: 'false' }).apiDocs).toBe(false);
    expect(problemsOf({ ...VALID, API_DOCS: 'off' })).toEqual([expect.stringMatching(/^API_DOCS /)]);
  });

  it('reads REDIS_SENTINELS as host:port pairs with the master name, and refuses anything else', () => {
    expect(loadConfig(VALID).redisSentinel).toBeNull();
    const config = loadConfig({
      ...VALID,
      REDIS_SENTINELS: 's1.internal:26379,10.0.0.7:26380',
      REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
    });
    expect(config.redisSentinel).toEqual({
      hosts: [
        { host: 's1.internal', port: 26379 },
        { host: '10.0.0.7', port: 26380 },
      ],
      name: 'mymaster',
      password: 'sentinel-secret',
    });
    for (const sentinels of ['s1.internal', 's1:26379,', 'redis://s1:26379', 's1:26379;s2:26379']) {
      expect(problemsOf({ ...VALID, REDIS_SENTINELS: sentinels })).toEqual([
        expect.stringMatching(/^REDIS_SENTINELS must be a comma-separated list of host:port/),
      ]);
    }
  });

  it('runs the worker metrics endpoint only on an explicit port, and refuses 0 or a non-port', () => {
    expect(loadConfig(VALID).workerMetricsPort).toBeNull();
    expect(loadConfig({ ...VALID, WORKER_METRICS_PORT: '9464' }).workerMetricsPort).toBe(9464);
    expect(problemsOf({ ...VALID, WORKER_METRICS_PORT: '0' })).toEqual([
      "WORKER_METRICS_PORT must be 1-65535; leave it unset to turn the worker's metrics endpoint off",
    ]);
    for (const port of ['70000', 'nine', '-1']) {
      expect(problemsOf({ ...VALID, WORKER_METRICS_PORT: port })).toEqual([
        expect.stringMatching(/^WORKER_METRICS_PORT /),
      ]);
    }
  });
});
