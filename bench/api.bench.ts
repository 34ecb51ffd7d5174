import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import autocannon from 'autocannon';
import { freePort } from '../libs/devstack/free-port.js';
import { answers200, spawnNode, waitUntil } from './lib/apps.js';
import { bracketed } from './lib/floors.js';
import { DIST_DIR } from './lib/paths.js';
import { enrollAll, expectOk, type Person } from './lib/people.js';
import type { BenchContext, Benchmark } from './lib/registry.js';
import type { Comparison } from './lib/report.js';
import { startBenchStack, type BenchStack } from './lib/stack.js';
import type { Measurement } from './lib/stats.js';

const CONNECTIONS = 100;
/** Requests on the inbox page, so that GET /api/requests answers a realistic list. */
const FILED_REQUESTS = 20;

/** autocannon on `url` for `seconds` (after a 1 s warm-up that is not counted). */
async function hammer(url: string, headers: Record<string, string>, seconds: number): Promise<Measurement> {
  await autocannon({ url, connections: CONNECTIONS, duration: 1, headers });
  const result = await autocannon({ url, connections: CONNECTIONS, duration: seconds, headers });
  return {
    rps: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
  };
}

/** A bare node:http server answering `body`, measured the same way; the server is a child process like the broker. */
async function floor(stack: BenchStack, name: string, body: string, seconds: number): Promise<Measurement> {
  const bodyFile = path.join(stack.workDir, `${name}.json`);
  await writeFile(bodyFile, body);
  const port = await freePort();
  const script = path.join(DIST_DIR, 'bench', 'floors', 'http-server.js');
  const server = await spawnNode(`floor-${name}`, script, {}, path.join(stack.workDir, `floor-${name}.log`), [
    String(port),
    bodyFile,
  ]);
  try {
    const url = `http://127.0.0.1:${port}/`;
    await waitUntil(() => answers200(url), 'the floor server', server);
    return await hammer(url, {}, seconds);
  } finally {
    await server.stop();
  }
}

async function measureRoute(
  stack: BenchStack,
  person: Person,
  route: string,
  seconds: number,
): Promise<Comparison> {
  const body = JSON.stringify(await expectOk(person.get(route), `GET ${route}`));
  const headers = { cookie: person.cookie };
  return bracketed(
    `GET ${route}, ${CONNECTIONS} connections`,
    'bare node:http, same JSON',
    () => floor(stack, route.replaceAll('/', '_'), body, seconds),
    () => hammer(`${stack.baseUrl}${route}`, headers, seconds),
  );
}

async function run({ quick, log }: BenchContext) {
  const seconds = quick ? 2 : 10;
  const stack = await startBenchStack();
  try {
    const [user] = await enrollAll(stack, ['bench-user']);
    for (let index = 0; index < FILED_REQUESTS; index += 1) {
      await expectOk(
        user.post('/api/requests', { entitlementId: 'bench-approved-token', durationSeconds: 600 }),
        'file a request',
      );
    }
    log(`enrolled bench-user with ${FILED_REQUESTS} pending requests; ${seconds} s per measurement`);
    const comparisons: Comparison[] = [];
    for (const route of ['/api/me', '/api/requests']) {
      comparisons.push(await measureRoute(stack, user, route, seconds));
      log(`measured ${route}`);
    }
    return {
      params: { connections: CONNECTIONS, seconds, warmUpSeconds: 1, filedRequests: FILED_REQUESTS },
      comparisons,
      notes: ['broker: NODE_ENV=production, request logs at info to a file, PostgreSQL with fsync on'],
    };
  } finally {
    await stack.stop();
  }
}

export const apiBench: Benchmark = {
  name: 'api',
  description: 'autocannon, 100 connections on GET /api/me and GET /api/requests; floor: bare node:http',
  run,
};
