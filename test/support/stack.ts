import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { INestApplicationContext } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import pg from 'pg';
import { createBroker } from '../../apps/broker/bootstrap.js';
import { createWorker } from '../../apps/worker/bootstrap.js';
import { loadConfig, type AppConfig } from '../../libs/config/config.js';
import { createDatabase, dropDatabase } from '../../libs/devstack/databases.js';
import { freePort } from '../../libs/devstack/free-port.js';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const INTROSPECTION_CLIENT = { id: 'resource-server', secret: randomBytes(24).toString('base64url') };

/** A broker and a worker on a fresh database and queue prefix, against the e2e PostgreSQL and Redis. */
export interface TestStack {
  baseUrl: string;
  config: AppConfig;
  /** A separate pool for assertions made behind the broker's back. */
  db: pg.Pool;
  broker: NestExpressApplication;
  worker: INestApplicationContext | null;
  close(): Promise<void>;
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value)
    throw new Error(`${name} is not set: run the e2e tier through jest (its globalSetup provides it)`);
  return value;
}

/** Boots the stack; always pair with `close()` in afterAll. */
export async function startStack(
  options: { policyDir?: string; env?: Record<string, string>; worker?: boolean } = {},
) {
  const adminUrl = requiredEnv('E2E_PG_ADMIN_URL');
  const suffix = randomBytes(6).toString('hex');
  const databaseName = `e2e_${suffix}`;
  const databaseUrl = await createDatabase(adminUrl, databaseName);
  const port = await freePort();
  const closers: Array<() => Promise<unknown>> = [() => dropDatabase(adminUrl, databaseName)];
  const close = async () => {
    for (let closer = closers.pop(); closer; closer = closers.pop()) await closer().catch(console.error);
  };
  try {
    const config = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: databaseUrl,
      REDIS_URL: requiredEnv('E2E_REDIS_URL'),
      PORT: String(port),
      POLICY_DIR: options.policyDir ?? path.join(PROJECT_ROOT, 'policies'),
      BROKER_MASTER_KEY: randomBytes(32).toString('base64'),
      QUEUE_PREFIX: `e2e-${suffix}`,
      AUTH_TEST_IDENTITY_HEADER: 'true',
      INTROSPECTION_CLIENTS: `${INTROSPECTION_CLIENT.id}:${INTROSPECTION_CLIENT.secret}`,
      LOG_LEVEL: 'warn',
      ...options.env,
    });
    const db = new pg.Pool({ connectionString: databaseUrl, max: 4 });
    closers.push(() => db.end());
    const broker = await createBroker(config);
    closers.push(() => broker.close());
    await broker.listen(port, '127.0.0.1');
    let worker: INestApplicationContext | null = null;
    if (options.worker !== false) {
      worker = await createWorker(config);
      closers.push(() => worker!.close());
    }
    const stack: TestStack = { baseUrl: `http://127.0.0.1:${port}`, config, db, broker, worker, close };
    return stack;
  } catch (error) {
    await close();
    throw error;
  }
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
}

/** A JSON client acting as `username` through the test-only identity header. */
export function clientAs(stack: TestStack, username: string | null) {
  const call = async (
    method: string,
    route: string,
    body?: unknown,
    raw?: string,
  ): Promise<ApiResponse<any>> => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (username) headers['x-test-user'] = username;
    const response = await fetch(`${stack.baseUrl}${route}`, {
      method,
      headers,
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  return {
    get: (route: string) => call('GET', route),
    post: (route: string, body: unknown = {}) => call('POST', route, body),
    postRaw: (route: string, raw: string) => call('POST', route, undefined, raw),
  };
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
