import { activateThroughApi, copyGrants } from './lib/grants.js';
import { enrollAll } from './lib/people.js';
import type { BenchContext, Benchmark } from './lib/registry.js';
import { compareRevocations, projectRevocations } from './lib/revocation.js';
import { startBenchStack } from './lib/stack.js';

async function run(context: BenchContext) {
  const window = context.quick ? { count: 50, spreadMs: 2_000 } : { count: 10_000, spreadMs: 60_000 };
  const stack = await startBenchStack({ worker: false });
  try {
    const [user] = await enrollAll(stack, ['bench-user']);
    const template = await activateThroughApi(user, 'bench-token');
    const copies = await copyGrants(stack, template.requestId, window.count);
    context.log(`${copies.length} ACTIVE jwt grants copied from request ${template.requestId}`);
    const comparison = await compareRevocations(
      stack,
      `jwt revocation, ${window.count} grants over ${window.spreadMs / 1000} s`,
      'bare BullMQ delayed jobs',
      window,
      context,
      { project: () => projectRevocations(stack, copies, window, context) },
    );
    return {
      params: { grants: window.count, spreadSeconds: window.spreadMs / 1000, workerConcurrency: 8 },
      comparisons: [comparison],
      notes: [
        'lateness: grants.revoked_at - not_after (project), Date.now() - notAfter in the job (floor)',
        'cpuMsPerRevocation: worker process CPU (user + system) from the first due time to the last revocation',
        'grants: one request activated through the API (self-service, passkey step-up), its rows copied',
      ],
    };
  } finally {
    await stack.stop();
  }
}

export const revocationJwtBench: Benchmark = {
  name: 'revocation-jwt',
  description: '10,000 jwt grants revoked by the worker over 60 s; floor: bare BullMQ delayed jobs',
  run,
};
