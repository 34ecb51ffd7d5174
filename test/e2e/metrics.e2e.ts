import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { freePort } from '../../libs/devstack/free-port.js';
import { JobName, QueueName } from '../../libs/jobs/jobs.js';
import { redisOptionsFromUrl } from '../../libs/jobs/jobs.module.js';
import { enrollAll, startStack, waitFor, type TestStack } from '../support/stack.js';

const TOKEN = randomBytes(24).toString('base64url');

/** The value of one sample (`name{labels} value`) in a Prometheus text exposition; undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('GET /metrics on the broker and the worker (prom-client)', () => {
  let stack: TestStack;
  let workerMetricsUrl: string;

  beforeAll(async () => {
    const workerPort = await freePort();
    workerMetricsUrl = `http://127.0.0.1:${workerPort}/metrics`;
    stack = await startStack({
      env: { METRICS_TOKEN: TOKEN, SWEEP_INTERVAL_SECONDS: '1', WORKER_METRICS_PORT: String(workerPort) },
    });
    await enrollAll(stack, ['alice', 'bob', 'admin'], { admin: ['admin'] });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  const scrape = (authorization?: string) =>
    fetch(`${stack.baseUrl}/metrics`, { headers: authorization ? { authorization } : {} });
  const scrapeWorker = (authorization?: string) =>
    fetch(workerMetricsUrl, { headers: authorization ? { authorization } : {} });
  const broker = async () => (await scrape(`Bearer ${TOKEN}`)).text();
  const worker = async () => (await scrapeWorker(`Bearer ${TOKEN}`)).text();

  it('answers 401 with the error envelope without the bearer token, or with a wrong one, on both', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token-wrong-token', `Basic ${TOKEN}`, 'Bearer ']) {
      for (const response of [await scrape(authorization), await scrapeWorker(authorization)]) {
        expect(response.status).toBe(401);
        expect(((await response.json()) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
      }
    }
    const elsewhere = await fetch(workerMetricsUrl.replace('/metrics', '/'), {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(elsewhere.status).toBe(404);
    expect((await fetch(workerMetricsUrl, { method: 'POST' })).status).toBe(405);
  });

  it('has a zero series for every grant state and each known result from the start', async () => {
    const text = await broker();
    for (const state of ['ACTIVE', 'REVOKING', 'REVOKED', 'REVOKE_FAILED'])
      expect(sample(text, `jit_grants{state="${state}"}`)).toBe(0);
    expect(sample(text, 'jit_grants_overdue')).toBe(0);
    expect(sample(text, 'jit_requests{state="PENDING"}')).toBe(0);
    for (const result of ['approve', 'deny', 'refused'])
      expect(sample(text, `jit_approvals_total{result="${result}"}`)).toBe(0);
    expect(sample(text, 'jit_rubber_stamp_flags_total')).toBe(0);
    for (const queue of Object.values(QueueName))
      for (const state of ['waiting', 'active', 'delayed', 'failed'])
        expect(sample(text, `jit_queue_jobs{queue="${queue}",state="${state}"}`)).toEqual(expect.any(Number));
    expect(sample(text, 'jit_broker_process_cpu_user_seconds_total')).toBeGreaterThan(0);
    // Each app exposes its own series only.
    expect(text).not.toMatch(/^jit_revocations_total/m);

    const workerText = await worker();
    expect(sample(workerText, 'jit_revocations_total{connector="jwt",result="revoked"}')).toBe(0);
    expect(sample(workerText, 'jit_revocations_total{connector="webhook",result="failed"}')).toBe(0);
    expect(sample(workerText, 'jit_revocation_lag_seconds_count{connector="jwt"}')).toBe(0);
    expect(sample(workerText, 'jit_worker_process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(workerText).not.toMatch(/^jit_grants\{/m);
    expect(workerText).not.toMatch(/^jit_http_request_duration_seconds/m);
  });

  it('counts a request, a refused step-up, an approval and an activation', async () => {
    const alice = stack.people.get('alice')!;
    const bob = stack.people.get('bob')!;
    const created = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 1,
      justification: 'metrics e2e',
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    let text = await broker();
    expect(sample(text, 'jit_requests{state="PENDING"}')).toBe(1);
    expect(
      sample(
        text,
        'jit_http_request_duration_seconds_count{method="POST",route="/api/requests",status="201"}',
      ),
    ).toBe(1);

    // A step-up made for another action: refused, audited, counted by its code and as a refused approval.
    const wrong = await bob.post(`/api/requests/${id}/approve`, { stepUp: await bob.stepUp('deny', id) });
    expect(wrong.status).toBe(401);
    text = await broker();
    expect(sample(text, `jit_step_up_failures_total{code="${wrong.body.error.code}"}`)).toBe(1);
    expect(sample(text, 'jit_approvals_total{result="refused"}')).toBe(1);
    expect(sample(text, 'jit_approve_duration_seconds_count{result="error"}')).toBe(1);

    // Bob approves without opening the request: a rubber stamp.
    expect((await bob.decide(id, 'approve')).status).toBe(200);
    text = await broker();
    expect(sample(text, 'jit_approvals_total{result="approve"}')).toBe(1);
    expect(sample(text, 'jit_approve_duration_seconds_count{result="ok"}')).toBe(1);
    expect(sample(text, 'jit_rubber_stamp_flags_total')).toBe(1);
    expect(sample(text, 'jit_rubber_stamp_approvals')).toBe(1);
    const approveRoute = 'method="POST",route="/api/requests/:id/approve"';
    expect(sample(text, `jit_http_request_duration_seconds_count{${approveRoute},status="200"}`)).toBe(1);
    expect(sample(text, `jit_http_request_duration_seconds_count{${approveRoute},status="401"}`)).toBe(1);
    // The route pattern, never the URL: no series names the request id.
    expect(text).not.toContain(id);

    expect((await alice.decide(id, 'activate')).status).toBe(200);
    text = await broker();
    expect(sample(text, 'jit_activate_duration_seconds_count{result="ok"}')).toBe(1);
    expect(sample(text, 'jit_activate_duration_seconds_sum{result="ok"}')).toBeGreaterThan(0);
  });

  it('counts the revocation on the worker, and the broker gauges follow PostgreSQL', async () => {
    // Once the worker has revoked the 1-second grant: its lag and count on the worker, the gauges on the broker.
    const workerText = await waitFor(
      async () => {
        const current = await worker();
        return sample(current, 'jit_revocations_total{connector="jwt",result="revoked"}') === 1
          ? current
          : undefined;
      },
      10_000,
      'the worker to count the revocation',
    );
    expect(sample(workerText, 'jit_revocation_lag_seconds_count{connector="jwt"}')).toBe(1);
    expect(sample(workerText, 'jit_revocation_lag_seconds_sum{connector="jwt"}')).toBeGreaterThanOrEqual(0);
    expect(sample(workerText, 'jit_revocation_lag_seconds_bucket{le="+Inf",connector="jwt"}')).toBe(1);
    expect(sample(workerText, 'jit_revocations_total{connector="jwt",result="failed"}')).toBe(0);

    const text = await broker();
    expect(sample(text, 'jit_grants{state="REVOKED"}')).toBe(1);
    expect(sample(text, 'jit_grants{state="ACTIVE"}')).toBe(0);
    expect(sample(text, 'jit_grants{state="REVOKE_FAILED"}')).toBe(0);
    expect(sample(text, 'jit_grants_overdue')).toBe(0);
    expect(sample(text, 'jit_requests{state="ENDED"}')).toBe(1);
    expect(sample(text, 'jit_revocation_lag_max_seconds')).toBeGreaterThanOrEqual(0);
  });

  it('reports each queue’s delayed jobs as Redis holds them', async () => {
    const queue = new Queue(QueueName.Notify, {
      connection: redisOptionsFromUrl(stack.config.redisUrl),
      prefix: stack.config.queuePrefix,
    });
    try {
      const series = 'jit_queue_jobs{queue="notify",state="delayed"}';
      const before = sample(await broker(), series)!;
      const job = await queue.add(
        JobName.DeliverNotification,
        { deliveryId: randomUUID() },
        { delay: 3_600_000, jobId: `metrics-${randomUUID()}` },
      );
      expect(sample(await broker(), series)).toBe(before + 1);
      await job.remove();
      expect(sample(await broker(), series)).toBe(before);
    } finally {
      await queue.close();
    }
  });

  it('keeps the admin grant list and users paging', async () => {
    const admin = stack.people.get('admin')!;
    const alice = stack.people.get('alice')!;
    const revoked = await admin.get('/api/admin/grants?state=REVOKED');
    expect(revoked.status).toBe(200);
    expect(revoked.body.items).toEqual([expect.objectContaining({ state: 'REVOKED', requester: 'alice' })]);
    expect((await admin.get('/api/admin/grants?state=REVOKE_FAILED')).body.items).toEqual([]);
    expect((await admin.get('/api/admin/grants?state=LOST')).status).toBe(400);
    expect((await alice.get('/api/admin/grants')).status).toBe(403);

    const first = await admin.get('/api/admin/users?limit=2');
    expect(first.body.items.map((user: { username: string }) => user.username)).toEqual(['admin', 'alice']);
    expect(first.body.nextCursor).toBe('alice');
    const second = await admin.get(`/api/admin/users?limit=2&cursor=${first.body.nextCursor}`);
    expect(second.body).toEqual({ items: [expect.objectContaining({ username: 'bob' })], nextCursor: null });
    expect((await admin.get('/api/admin/users?cursor=Not%20A%20User')).status).toBe(400);
  });
});
