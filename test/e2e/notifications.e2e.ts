// Notifications (issue 18) through the whole stack against receivers inside the test: an SMTP server
// (smtp-server), a Slack-shaped and a signed-webhook HTTP receiver. E-mails link to the request page; ten
// pending requests make one digest; break-glass reaches approvers and admins within 5 s; REVOKE_FAILED
// reaches admins; a receiver that is down never blocks a state change and its deliveries end failed after
// their retries; no message carries a token, a certificate or an invite token.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { SMTPServer } from 'smtp-server';
import { verifyWebhookSignature } from '../../libs/connectors/webhook.connector.js';
import { freePort } from '../../libs/devstack/free-port.js';
import { startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { policyDirFromFixture } from '../support/policy-fixture.js';
import {
  clientAs,
  enroll,
  enrollAll,
  inviteToken,
  startStack,
  waitFor,
  type TestStack,
} from '../support/stack.js';

jest.setTimeout(90_000);

const CONNECTOR_SECRET = 'whsec_notify_connector_0c9d8e7f';
const NOTIFY_SECRET = 'whsec_notify_channel_4a5b6c7d8e';
const DIGEST_INTERVAL_SECONDS = 4;
const NOTIFY_ATTEMPTS = 3;
const METRICS_TOKEN = 'notify-metrics-token-0123456789';

interface Mail {
  to: string[];
  raw: string;
  at: number;
}
interface HttpMessage {
  path: string;
  verified: boolean;
  body: Record<string, any>;
  raw: string;
  at: number;
}

const received = { mails: [] as Mail[], http: [] as HttpMessage[] };
const receiver = { notifyDown: false, failRevokes: false };

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function mailsTo(address: string): Mail[] {
  return received.mails.filter((mail) => mail.to.includes(address));
}

/** The decoded text of a mail (quoted-printable soft breaks joined), for searching. */
function textOf(mail: Mail): string {
  return mail.raw.replace(/=\r?\n/g, '').replace(/=3D/g, '=');
}

async function deliveriesOf(stack: TestStack, requestId: string) {
  const { rows } = await stack.db.query(
    `SELECT kind, channel, recipient, status, attempts, last_error FROM notification_deliveries
      WHERE request_id = $1 ORDER BY created_at`,
    [requestId],
  );
  return rows as Array<{
    kind: string;
    channel: string;
    recipient: string;
    status: string;
    attempts: number;
    last_error: string | null;
  }>;
}

/** The value of one sample (`name{labels} value`) of a Prometheus text exposition; undefined when absent. */
function metricSample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Deliveries sent or failed, as the jit_notifications_total series that must count them. */
async function recordedDeliveries(stack: TestStack): Promise<Map<string, number>> {
  const { rows } = await stack.db.query(
    `SELECT channel, status, count(*)::int AS count FROM notification_deliveries
      WHERE status IN ('sent', 'failed') GROUP BY channel, status`,
  );
  return new Map(
    (rows as Array<{ channel: string; status: string; count: number }>).map((row) => [
      `jit_notifications_total{channel="${row.channel}",result="${row.status}"}`,
      row.count,
    ]),
  );
}

describe('notifications: e-mail, Slack and signed webhooks from the audit log', () => {
  let smtp: SMTPServer;
  let http: Server;
  let policyDir: string;
  let stack: TestStack;
  let issuer: OidcIssuer;
  let workerMetricsUrl: string;
  const secrets: string[] = [];
  const workerMetrics = async () =>
    (await fetch(workerMetricsUrl, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();

  beforeAll(async () => {
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          const to = session.envelope.rcptTo.map((address) => address.address);
          received.mails.push({ to, raw: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
    http = createServer((incoming, response) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const path = incoming.url ?? '';
        const signed = (secret: string) =>
          verifyWebhookSignature(
            secret,
            header(incoming.headers, 'x-jit-timestamp'),
            raw,
            header(incoming.headers, 'x-jit-signature'),
          );
        if (path === '/connector') {
          const event = JSON.parse(raw) as { event: string; grantId: string };
          if (!signed(CONNECTOR_SECRET)) return response.writeHead(401).end();
          if (event.event === 'revoke' && receiver.failRevokes) return response.writeHead(500).end();
          response.writeHead(200, { 'Content-Type': 'application/json' });
          return response.end(
            JSON.stringify({ credential: { group: 'ops' }, externalRef: `ref-${event.grantId}` }),
          );
        }
        const verified = path === '/notify' ? signed(NOTIFY_SECRET) : false;
        received.http.push({ path, verified, body: JSON.parse(raw), raw, at: Date.now() });
        response.writeHead(receiver.notifyDown ? 503 : 200).end();
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const httpUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    issuer = await startOidcIssuer();
    policyDir = await policyDirFromFixture('notifications', {
      ISSUER: issuer.issuer,
      RECEIVER_URL: httpUrl,
      SMTP_PORT: String((smtp.server.address() as AddressInfo).port),
      DIGEST_INTERVAL: `${DIGEST_INTERVAL_SECONDS}s`,
    });
    const workerMetricsPort = await freePort();
    workerMetricsUrl = `http://127.0.0.1:${workerMetricsPort}/metrics`;
    stack = await startStack({
      policyDir,
      env: {
        METRICS_TOKEN,
        WORKER_METRICS_PORT: String(workerMetricsPort),
        E2E_CONNECTOR_SECRET: CONNECTOR_SECRET,
        E2E_NOTIFY_SECRET: NOTIFY_SECRET,
        E2E_SLACK_URL: `${httpUrl}/slack`,
        NOTIFY_POLL_INTERVAL_MS: '300',
        NOTIFY_ATTEMPTS: String(NOTIFY_ATTEMPTS),
        NOTIFY_BACKOFF_MS: '100',
        REVOKE_BACKOFF_MS: '50',
        SWEEP_INTERVAL_SECONDS: '1',
      },
    });
    await enrollAll(stack, ['alice', 'bob']);
    await enroll(stack, 'root', { roles: ['admin'] });
    // Each sets their own address with a step-up; an admin sets alice's.
    for (const username of ['bob', 'root']) {
      const person = clientAs(stack, username);
      const body = { email: `${username}@example.test` };
      const stepUp = await person.stepUp('user.email', username, body);
      expect((await person.post('/api/me/notifications/email', { ...body, stepUp })).status).toBe(200);
    }
    const root = clientAs(stack, 'root');
    const forAlice = { email: 'alice@example.test' };
    const set = await root.post('/api/admin/users/alice/email', {
      ...forAlice,
      stepUp: await root.stepUp('user.email', 'alice', forAlice),
    });
    expect(set.status).toBe(200);
    for (const person of stack.people.values()) secrets.push(person.cookie.split('=')[1]);
    secrets.push(await inviteToken(stack, 'dave'));
  });

  afterAll(async () => {
    await stack?.close();
    await issuer?.close();
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (smtp ? smtp.close(() => resolve()) : resolve()));
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  });

  it('changes an address only with a step-up, refuses a bad one, and shows settings to their owner', async () => {
    const bob = clientAs(stack, 'bob');
    expect((await bob.post('/api/me/notifications/email', { email: 'other@example.test' })).status).toBe(401);
    const bad = { email: 'not an address' };
    const refused = await bob.post('/api/me/notifications/email', {
      ...bad,
      stepUp: await bob.stepUp('user.email', 'bob', bad),
    });
    expect(refused.status).toBe(400);
    expect(
      (await clientAs(stack, 'alice').post('/api/admin/users/bob/email', { email: 'x@example.test' })).status,
    ).toBe(403);
    const settings = await bob.get('/api/me/notifications');
    expect(settings.body).toMatchObject({ email: 'bob@example.test', preferences: { email: true } });
    expect(settings.body.channels.map((channel: { name: string }) => channel.name)).toEqual([
      'chat',
      'hook',
      'mail',
    ]);
    expect(JSON.stringify(settings.body)).not.toContain(NOTIFY_SECRET);
  });

  async function file(entitlementId: string): Promise<string> {
    const created = await clientAs(stack, 'alice').post('/api/requests', {
      entitlementId,
      durationSeconds: 600,
      justification: 'notifications e2e',
    });
    expect(created.status).toBe(201);
    return created.body.id as string;
  }

  it('e-mails the approver a link to the request page; Slack and the signed webhook get it too', async () => {
    const requestId = await file('app-token');
    const link = `${stack.origin}/requests/${requestId}`;
    const mail = await waitFor(
      async () => mailsTo('bob@example.test').find((item) => textOf(item).includes(link)),
      10_000,
      'the approver e-mail',
    );
    expect(textOf(mail)).toContain('Subject: [JIT] Approval needed');
    const hook = await waitFor(
      async () => received.http.find((item) => item.path === '/notify' && item.body.link === link),
      10_000,
      'the webhook message',
    );
    expect(hook.verified).toBe(true);
    expect(hook.body).toMatchObject({ event: 'notification', kind: 'request.filed', link });
    const slack = await waitFor(
      async () => received.http.find((item) => item.path === '/slack' && item.raw.includes(link)),
      10_000,
      'the Slack message',
    );
    expect(slack.body.text).toContain(link);
    expect(slack.body.blocks).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'header' }),
        expect.objectContaining({
          type: 'actions',
          elements: [expect.objectContaining({ type: 'button', url: link })],
        }),
      ]),
    );
    // The approver's navigation counts it until the page is opened.
    const unread = await clientAs(stack, 'bob').get('/api/me/unread');
    expect(unread.body.approvals).toBeGreaterThanOrEqual(1);
    // The requester hears of the decision, with a link to the same page.
    expect((await clientAs(stack, 'bob').decide(requestId, 'approve')).status).toBe(200);
    const approved = await waitFor(
      async () =>
        mailsTo('alice@example.test').find(
          (item) => textOf(item).includes('approved') && textOf(item).includes(link),
        ),
      10_000,
      'the requester e-mail',
    );
    expect(textOf(approved)).toContain(link);
    // At most one message per approver per request.
    expect(mailsTo('bob@example.test').filter((item) => textOf(item).includes(link))).toHaveLength(1);
  });

  it('ten requests pending for one approver within the interval make one digest', async () => {
    const since = Date.now();
    const ids: string[] = [];
    for (let index = 0; index < 10; index++) ids.push(await file('digest-token'));
    const digest = await waitFor(
      async () =>
        mailsTo('bob@example.test').find(
          (item) => item.at >= since && textOf(item).includes('Requests waiting for your approval'),
        ),
      (DIGEST_INTERVAL_SECONDS + 10) * 1000,
      'the digest',
    );
    const about = mailsTo('bob@example.test').filter(
      (item) => item.at >= since && ids.some((id) => textOf(item).includes(id)),
    );
    // One digest, plus at most the one immediate message when the approver had heard nothing recently.
    expect(about.length).toBeLessThanOrEqual(2);
    expect(about.filter((item) => textOf(item).includes('Requests waiting'))).toEqual([digest]);
    for (const id of ids) expect(about.some((item) => textOf(item).includes(id))).toBe(true);
    expect(ids.filter((id) => textOf(digest).includes(id)).length).toBeGreaterThanOrEqual(9);
  });

  it('tells approvers and admins of a break-glass use within 5 s', async () => {
    const alice = clientAs(stack, 'alice');
    const params = { entitlementId: 'breakglass-token', durationSeconds: 600, justification: 'Outage (e2e)' };
    const stepUp = await alice.stepUp('break-glass', params.entitlementId, params);
    const created = await alice.post('/api/requests', { ...params, stepUp });
    expect(created.status).toBe(201);
    const answeredAt = Date.now();
    secrets.push(created.body.credential.token as string);
    const link = `${stack.origin}/requests/${created.body.request.id}`;
    for (const address of ['bob@example.test', 'root@example.test']) {
      const mail = await waitFor(
        async () =>
          mailsTo(address).find(
            (item) => textOf(item).includes('Break-glass access used') && textOf(item).includes(link),
          ),
        10_000,
        `the break-glass e-mail to ${address}`,
      );
      expect(mail.at - answeredAt).toBeLessThan(5_000);
    }
  });

  it('tells admins when a revocation keeps failing (REVOKE_FAILED)', async () => {
    receiver.failRevokes = true;
    const requestId = await file('ticketing-admin');
    expect((await clientAs(stack, 'bob').decide(requestId, 'approve')).status).toBe(200);
    expect((await clientAs(stack, 'alice').decide(requestId, 'activate')).status).toBe(200);
    const alice = clientAs(stack, 'alice');
    const revoked = await alice.post(`/api/requests/${requestId}/revoke`, {
      reason: 'done (e2e)',
      stepUp: await alice.stepUp('revoke', requestId),
    });
    expect([200, 202]).toContain(revoked.status);
    const mail = await waitFor(
      async () =>
        mailsTo('root@example.test').find(
          (item) => textOf(item).includes('revocation keeps failing') && textOf(item).includes(requestId),
        ),
      30_000,
      'the REVOKE_FAILED e-mail',
    );
    expect(textOf(mail)).toContain(`${stack.origin}/requests/${requestId}`);
    // The worker counted the attempts: retries, then the failure that made the grant REVOKE_FAILED.
    const text = await workerMetrics();
    expect(
      metricSample(text, 'jit_revocations_total{connector="webhook",result="failed"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(
      metricSample(text, 'jit_revocations_total{connector="webhook",result="retry"}'),
    ).toBeGreaterThanOrEqual(1);
    receiver.failRevokes = false;
  });

  it('a receiver that is down blocks no state change; its deliveries retry and end failed', async () => {
    receiver.notifyDown = true;
    try {
      const requestId = await file('app-token');
      expect((await clientAs(stack, 'bob').decide(requestId, 'approve')).status).toBe(200);
      const failed = await waitFor(
        async () => {
          const rows = (await deliveriesOf(stack, requestId)).filter((row) => row.channel !== 'mail');
          return rows.length >= 4 && rows.every((row) => row.status === 'failed') ? rows : undefined;
        },
        30_000,
        'the failed webhook and Slack deliveries',
      );
      for (const row of failed) {
        expect(row.attempts).toBe(NOTIFY_ATTEMPTS);
        expect(row.last_error).toContain('503');
      }
      // The worker's jit_notifications_total agrees with the recorded deliveries, channel by channel.
      const channels = [...new Set(failed.map((row) => row.channel))];
      const counted = await waitFor(
        async () => {
          const [text, recorded] = await Promise.all([workerMetrics(), recordedDeliveries(stack)]);
          const agree = [...recorded].every(([key, count]) => metricSample(text, key) === count);
          return agree ? { text, recorded } : undefined;
        },
        10_000,
        'jit_notifications_total to match the recorded deliveries',
      );
      for (const channel of channels) {
        const series = `jit_notifications_total{channel="${channel}",result="failed"}`;
        expect(metricSample(counted.text, series)).toBeGreaterThanOrEqual(
          failed.filter((row) => row.channel === channel).length,
        );
        const retries = metricSample(counted.text, series.replace('"failed"', '"retry"'));
        const failedHere = failed.filter((row) => row.channel === channel).length;
        expect(retries).toBeGreaterThanOrEqual((NOTIFY_ATTEMPTS - 1) * failedHere);
      }
      expect(
        metricSample(counted.text, 'jit_notifications_total{channel="mail",result="sent"}'),
      ).toBeGreaterThan(0);
      // Admins see them, with the error; others may not look.
      const log = await clientAs(stack, 'root').get('/api/admin/notifications?status=failed&limit=200');
      expect(log.status).toBe(200);
      expect(
        log.body.items.filter((item: { requestId: string }) => item.requestId === requestId).length,
      ).toBe(failed.length);
      expect((await clientAs(stack, 'bob').get('/api/admin/notifications')).status).toBe(403);
      // E-mail is another channel: it went through.
      expect(
        (await deliveriesOf(stack, requestId))
          .filter((row) => row.channel === 'mail')
          .every((row) => row.status === 'sent'),
      ).toBe(true);
    } finally {
      receiver.notifyDown = false;
    }
  });

  it('puts no token, credential, certificate or invite token in any message', async () => {
    const { rows } = await stack.db.query(`SELECT body::text AS body FROM notification_deliveries`);
    const everything = [
      ...received.mails.map((mail) => mail.raw),
      ...received.http.map((item) => item.raw),
      ...rows.map((row: { body: string }) => row.body),
    ];
    expect(received.mails.length).toBeGreaterThan(5);
    expect(secrets.length).toBeGreaterThanOrEqual(5);
    for (const text of everything) {
      for (const secret of secrets) expect(text.includes(secret)).toBe(false);
      expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
      expect(text).not.toMatch(/-----BEGIN|ssh-[a-z0-9-]+-cert|invite=|password/i);
    }
  });

  it("tells a workload's owner group, not the workload, that its request was approved", async () => {
    const token = await issuer.token({ sub: 'repo:org/app:main', aud: 'jit-broker' });
    const filed = await fetch(`${stack.baseUrl}/api/requests`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ entitlementId: 'app-token', durationSeconds: 600, justification: 'deploy v2' }),
    });
    expect(filed.status).toBe(201);
    const requestId = ((await filed.json()) as { id: string }).id;
    expect((await clientAs(stack, 'bob').decide(requestId, 'approve')).status).toBe(200);
    const link = `${stack.origin}/requests/${requestId}`;
    const mail = await waitFor(
      async () => mailsTo('alice@example.test').find((item) => textOf(item).includes(link)),
      10_000,
      "the owner group's e-mail",
    );
    expect(textOf(mail)).toContain('Subject: [JIT] Your request was approved');
    const { rows } = await stack.db.query(
      `SELECT count(*)::int AS n FROM notification_deliveries d JOIN users u ON u.id = d.recipient_user_id
        WHERE d.request_id = $1 AND u.kind = 'workload'`,
      [requestId],
    );
    expect(rows[0].n).toBe(0);
  }, 30_000);
});
