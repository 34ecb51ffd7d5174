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
    expect(config.testIdentityHeader).toBe(false);
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

  it('refuses the test-only identity header outside NODE_ENV=test', () => {
    for (const NODE_ENV of ['development', 'production']) {
      expect(problemsOf({ ...VALID, NODE_ENV, AUTH_TEST_IDENTITY_HEADER: 'true' })).toEqual([
        'AUTH_TEST_IDENTITY_HEADER may only be set when NODE_ENV=test',
      ]);
    }
    expect(
      loadConfig({ ...VALID, NODE_ENV: 'test', AUTH_TEST_IDENTITY_HEADER: 'true' }).testIdentityHeader,
    ).toBe(true);
  });

  it('parses introspection clients and resolves connector secrets by name only', () => {
    const secret = 'a'.repeat(24);
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
});
