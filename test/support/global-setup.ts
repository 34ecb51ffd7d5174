import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import Module from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** What globalSetup started; stop() undoes it in reverse order and may be called more than once. */
export interface E2eServices {
  stop(): Promise<void>;
}

declare global {
  var __jitE2eServices: E2eServices | undefined;
}

/** Provides PostgreSQL and Redis to the e2e tier: external ones from TEST_DATABASE_URL / TEST_REDIS_URL, else local children. */
export default async function globalSetup(): Promise<void> {
  const cleanups: Array<() => Promise<void>> = [];
  const services: E2eServices = {
    async stop() {
      const failures: unknown[] = [];
      for (let cleanup = cleanups.pop(); cleanup !== undefined; cleanup = cleanups.pop()) {
        await cleanup().catch((error: unknown) => failures.push(error));
      }
      if (failures.length > 0) throw new AggregateError(failures, 'stopping the e2e services failed');
    },
  };
  globalThis.__jitE2eServices = services;

  let scratch: string | undefined;
  const scratchDir = async (name: string): Promise<string> => {
    if (scratch === undefined) {
      const dir = await mkdtemp(path.join(tmpdir(), 'jit-e2e-'));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      scratch = dir;
    }
    return path.join(scratch, name);
  };

  try {
    // Where the suites that run dist/ share one build (test/support/temp-build.ts sharedBuild); the
    // workers inherit the variable, the scratch dir's removal removes the build.
    process.env.JIT_SHARED_BUILD_DIR ??= await scratchDir('shared-build');
    const externalPostgres = process.env.TEST_DATABASE_URL;
    if (externalPostgres) {
      process.env.E2E_PG_ADMIN_URL = externalPostgres;
    } else {
      const { startEmbeddedPostgres } = await loadTypeScript(
        () => import('../../libs/devstack/embedded-postgres.js'),
      );
      const postgres = await startEmbeddedPostgres({ dataDir: await scratchDir('pg'), persistent: false });
      cleanups.push(postgres.stop);
      process.env.E2E_PG_ADMIN_URL = postgres.adminUrl;
    }
    // As README's "Database roles" asks of a server: only the roles granted CONNECT reach a database, so a
    // minted login stays in its target. This changes an external TEST_DATABASE_URL server too.
    const { revokePublicConnect } = await loadTypeScript(
      () => import('../../libs/devstack/database-roles.js'),
    );
    for (const database of ['postgres', 'template1']) {
      await revokePublicConnect(process.env.E2E_PG_ADMIN_URL, database);
    }

    const externalRedis = process.env.TEST_REDIS_URL;
    if (externalRedis) {
      process.env.E2E_REDIS_URL = externalRedis;
    } else {
      const { startRedisServer } = await loadTypeScript(() => import('../../libs/devstack/redis-server.js'));
      const dir = await scratchDir('redis');
      await mkdir(dir, { recursive: true });
      const redis = await startRedisServer({ dir });
      cleanups.push(redis.stop);
      process.env.E2E_REDIS_URL = redis.url;
    }
  } catch (error) {
    // A failed globalSetup gets no teardown: whatever did start must not outlive it.
    await services.stop().catch((cleanupError: unknown) => console.error(cleanupError));
    throw error;
  }
}

/**
 * Jest requires globalSetup as CommonJS, without moduleNameMapper, so our `./x.js` specifiers are retried as
 * `./x.ts` while `load` runs.
 */
async function loadTypeScript<T>(load: () => Promise<T>): Promise<T> {
  type Resolve = (this: unknown, request: string, ...rest: unknown[]) => string;
  const loader = Module as unknown as { _resolveFilename: Resolve };
  const resolve = loader._resolveFilename;
  loader._resolveFilename = function (request, ...rest) {
    try {
      return resolve.call(this, request, ...rest);
    } catch (error) {
      if (!/^\.{1,2}\/.*\.js$/.test(request)) throw error;
      return resolve.call(this, `${request.slice(0, -'.js'.length)}.ts`, ...rest);
    }
  };
  try {
    return await load();
  } finally {
    loader._resolveFilename = resolve;
  }
}
