import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { freePort } from '../../libs/devstack/free-port.js';
import { startRedisServer, type RedisServer } from '../../libs/devstack/redis-server.js';
import { clientAs, enrollAll, startStack, waitFor, type TestStack } from '../support/stack.js';

const SWEEP_INTERVAL_SECONDS = 1;

async function approvedRequest(stack: TestStack, durationSeconds: number): Promise<string> {
  const created = await clientAs(stack, 'alice').post('/api/requests', {
    entitlementId: 'api-admin-token',
    durationSeconds,
    justification: 'resilience test',
  });
  expect(created.status).toBe(201);
  const approved = await clientAs(stack, 'bob').decide(created.body.id, 'approve');
  expect(approved.body.state).toBe('APPROVED');
  return created.body.id as string;
}

async function grantOf(stack: TestStack, requestId: string) {
  const { rows } = await stack.db.query(
    `SELECT g.state, g.not_after, g.revoked_at, r.state AS request_state
       FROM grants g JOIN elevation_requests r ON r.id = g.request_id WHERE g.request_id = $1`,
    [requestId],
  );
  return rows[0] as { state: string; not_after: Date; revoked_at: Date | null; request_state: string };
}

// This suite owns its redis-server, so it can flush and kill it without touching other suites' queues.
describe('revocation survives the loss of Redis', () => {
  let redis: RedisServer;
  let redisPort: number;
  let redisDir: string;
  let stack: TestStack;

  beforeAll(async () => {
    redisPort = await freePort();
    redisDir = await mkdtemp(path.join(tmpdir(), 'jit-redis-'));
    redis = await startRedisServer({ port: redisPort, dir: redisDir });
    stack = await startStack({
      env: { REDIS_URL: redis.url, SWEEP_INTERVAL_SECONDS: String(SWEEP_INTERVAL_SECONDS) },
    });
    await enrollAll(stack, ['alice', 'bob']);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await redis?.stop();
    if (redisDir) await rm(redisDir, { recursive: true, force: true });
  }, 60_000);

  it('revokes every grant on time plus one sweep interval after FLUSHALL', async () => {
    const requestIds = [];
    for (let index = 0; index < 5; index++) requestIds.push(await approvedRequest(stack, 3));
    for (const id of requestIds) {
      expect((await clientAs(stack, 'alice').decide(id, 'activate')).status).toBe(200);
    }
    const flusher = new Redis(redis.url);
    try {
      expect(await flusher.flushall()).toBe('OK');
      expect(await flusher.dbsize()).toBe(0);
    } finally {
      flusher.disconnect();
    }
    for (const id of requestIds) {
      const grant = await waitFor(
        async () => {
          const current = await grantOf(stack, id);
          return current.state === 'REVOKED' && current.request_state === 'ENDED' ? current : undefined;
        },
        20_000,
        `grant of ${id} to be revoked`,
      );
      // On time plus one sweep interval, with a second of slack for the job itself.
      expect(grant.revoked_at!.getTime() - grant.not_after.getTime()).toBeLessThanOrEqual(
        (SWEEP_INTERVAL_SECONDS + 1) * 1000,
      );
    }
  }, 60_000);

  it('answers an activation while Redis is down, and revokes the grant once Redis is back', async () => {
    const id = await approvedRequest(stack, 2);
    await redis.stop();
    // The step-up challenge and the activation both go through while Redis is down.
    const activated = await clientAs(stack, 'alice').decide(id, 'activate');
    expect(activated.status).toBe(200);
    expect(activated.body.credential.type).toBe('jwt');
    expect((await grantOf(stack, id)).state).toBe('ACTIVE');

    redis = await startRedisServer({ port: redisPort, dir: redisDir });
    const grant = await waitFor(
      async () => {
        const current = await grantOf(stack, id);
        return current.state === 'REVOKED' ? current : undefined;
      },
      30_000,
      'the grant to be revoked after Redis came back',
    );
    expect(grant.request_state).toBe('ENDED');
  }, 60_000);
});
