// Issue 19 point 1: Redis through Sentinel (REDIS_SENTINELS). The broker and worker find the master by
// asking a real redis-sentinel, not REDIS_URL's host (which points at nothing), and keep working, revoking on
// time, after the master dies and Sentinel promotes its replica.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { stopperOf } from '../../libs/devstack/child-stop.js';
import { freePort } from '../../libs/devstack/free-port.js';
import { startRedisServer, type RedisServer } from '../../libs/devstack/redis-server.js';
import { enrollAll, startStack, waitFor, type TestStack } from '../support/stack.js';

const MASTER_NAME = 'jitmaster';
const CHILD_STOP_GRACE_MS = 5_000;

interface RedisChild {
  port: number;
  stop(): Promise<void>;
}

/** A redis-server child (a replica or, with `--sentinel`, a Sentinel) that answers PING on `port`. */
async function spawnRedis(port: number, args: string[]): Promise<RedisChild> {
  const child: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = stopperOf(child, exited, CHILD_STOP_GRACE_MS);
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  probe.on('error', () => undefined);
  try {
    await waitFor(
      async () => ((await probe.ping().catch(() => undefined)) === 'PONG' ? true : undefined),
      10_000,
      `redis-server ${args.join(' ')} to answer PING`,
    );
  } catch (error) {
    await stop();
    throw error;
  } finally {
    probe.disconnect();
  }
  return { port, stop };
}

/** The master's port as the Sentinel reports it. */
async function masterPortSeenBy(sentinel: Redis): Promise<number | undefined> {
  const address = (await sentinel.call('SENTINEL', 'get-master-addr-by-name', MASTER_NAME)) as
    string[] | null;
  return address === null ? undefined : Number(address[1]);
}

describe('Redis through Sentinel (REDIS_SENTINELS)', () => {
  let dir: string | undefined;
  let master: RedisServer | undefined;
  let replica: RedisChild | undefined;
  let sentinelProcess: RedisChild | undefined;
  let sentinel: Redis | undefined;
  let stack: TestStack | undefined;

  /** Files a 1-second grant as alice, approved by bob, activated, and waits for the worker to revoke it. */
  const grantRevokedOnTime = async (): Promise<void> => {
    const alice = stack!.people.get('alice')!;
    const bob = stack!.people.get('bob')!;
    const created = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 1,
      justification: 'sentinel e2e',
    });
    expect(created.status).toBe(201);
    expect((await bob.decide(created.body.id, 'approve')).status).toBe(200);
    expect((await alice.decide(created.body.id, 'activate')).status).toBe(200);
    const grant = await waitFor(
      async () => {
        const view = await alice.get(`/api/requests/${created.body.id}`);
        return view.body.grant?.state === 'REVOKED' ? view.body.grant : undefined;
      },
      15_000,
      'the worker to revoke the grant',
    );
    expect(grant.revokedAt).toEqual(expect.any(String));
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'jit-sentinel-'));
    master = await startRedisServer();
    const replicaPort = await freePort();
    replica = await spawnRedis(replicaPort, [
      ...['--port', String(replicaPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      ...['--replicaof', '127.0.0.1', String(master.port)],
    ]);
    const sentinelPort = await freePort();
    const config = path.join(dir, 'sentinel.conf');
    // Sentinel rewrites its own config file: it must be writable.
    await writeFile(
      config,
      [
        `port ${sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${master.port} 1`,
        `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
        `sentinel failover-timeout ${MASTER_NAME} 5000`,
        '',
      ].join('\n'),
    );
    sentinelProcess = await spawnRedis(sentinelPort, [config, '--sentinel']);
    sentinel = new Redis({ port: sentinelPort, host: '127.0.0.1' });
    // Failover needs the Sentinel to know the replica (it learns it from the master's INFO).
    await waitFor(
      async () => {
        const replicas = (await sentinel!.call('SENTINEL', 'replicas', MASTER_NAME)) as unknown[];
        return replicas.length > 0 ? true : undefined;
      },
      15_000,
      'the Sentinel to discover the replica',
    );
    stack = await startStack({
      env: {
        // Nothing listens on port 9: only the Sentinel can lead the apps to Redis.
        REDIS_URL: 'redis://127.0.0.1:9/0',
        REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`,
        REDIS_SENTINEL_NAME: MASTER_NAME,
        SWEEP_INTERVAL_SECONDS: '1',
        REVOKE_BACKOFF_MS: '200',
      },
    });
    await enrollAll(stack, ['alice', 'bob']);
  }, 90_000);

  afterAll(async () => {
    await stack?.close();
    sentinel?.disconnect();
    for (const child of [sentinelProcess, replica]) await child?.stop();
    await master?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    // As long as the setup may take: on a loaded machine the apps' shutdown after a failover took over 30 s.
  }, 90_000);

  it('finds the master through the Sentinel: ready, and a grant is revoked by the worker', async () => {
    expect(stack!.config.redisSentinel).toEqual({
      hosts: [{ host: '127.0.0.1', port: sentinelProcess!.port }],
      name: MASTER_NAME,
      password: undefined,
    });
    const ready = await fetch(`${stack!.baseUrl}/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ok', checks: { postgres: 'up', redis: 'up' } });
    await grantRevokedOnTime();
  }, 30_000);

  it('follows a failover: the master dies, the replica is promoted, and grants are still revoked', async () => {
    await master!.stop();
    const promoted = await waitFor(
      async () => {
        const port = await masterPortSeenBy(sentinel!).catch(() => undefined);
        return port === replica!.port ? port : undefined;
      },
      20_000,
      'the Sentinel to promote the replica',
    );
    expect(promoted).toBe(replica!.port);
    await waitFor(
      async () => ((await fetch(`${stack!.baseUrl}/health/ready`)).status === 200 ? true : undefined),
      15_000,
      'the broker to be ready on the promoted master',
    );
    await grantRevokedOnTime();
  }, 60_000);
});
