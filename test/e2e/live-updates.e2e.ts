// GET /api/events (DESIGN §10): committed request changes reach the Server-Sent Events streams of the people
// who may see them, through Redis pub/sub, whichever broker holds the stream and whichever process (broker
// or worker) made the change. Streams and background polls never keep a session alive; streams are capped.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { createBroker } from '../../apps/broker/bootstrap.js';
import { freePort } from '../../libs/devstack/free-port.js';
import {
  enrollAll,
  httpClient,
  sessionCookieFrom,
  startStack,
  waitFor,
  type Person,
  type TestStack,
} from '../support/stack.js';

interface ServerSentEvent {
  event: string;
  data: Record<string, unknown>;
}

interface OpenStream {
  status: number;
  contentType: string | null;
  /** The error envelope's code when the stream was refused. */
  code: string | null;
  retryAfter: string | null;
  events: ServerSentEvent[];
  /** Whether the broker has ended the stream. */
  ended: () => boolean;
  close: () => void;
}

/** Opens the stream with a session cookie and collects its events as they arrive. */
async function openStream(baseUrl: string, cookie: string | null, origin?: string): Promise<OpenStream> {
  const controller = new AbortController();
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (cookie) headers.cookie = cookie;
  if (origin) headers.origin = origin;
  const response = await fetch(`${baseUrl}/api/events`, { headers, signal: controller.signal });
  const events: ServerSentEvent[] = [];
  let ended = !response.ok;
  let code: string | null = null;
  if (response.ok && response.body) void collect(response.body, events).then(() => (ended = true));
  else code = ((await response.json()) as { error?: { code?: string } }).error?.code ?? null;
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    code,
    retryAfter: response.headers.get('retry-after'),
    events,
    ended: () => ended,
    close: () => controller.abort(),
  };
}

async function collect(body: ReadableStream<Uint8Array>, events: ServerSentEvent[]): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of body) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) as Record<string, unknown> });
      }
    }
  } catch {
    // Aborted by close(), or the broker dropped the connection.
  }
}

/** The `request` events a stream has received about one request, as their states. */
function statesOf(stream: OpenStream, requestId: string): string[] {
  return stream.events
    .filter((event) => event.event === 'request' && event.data.requestId === requestId)
    .map((event) => event.data.state as string);
}

function untilState(stream: OpenStream, requestId: string, state: string, what: string) {
  return waitFor(async () => (statesOf(stream, requestId).includes(state) ? true : undefined), 5000, what);
}

describe('live updates over Server-Sent Events', () => {
  let stack: TestStack;
  let secondBroker: NestExpressApplication;
  let secondBaseUrl: string;
  let alice: Person;
  let bob: Person;
  let carol: Person;
  const streams: OpenStream[] = [];

  beforeAll(async () => {
    stack = await startStack();
    // A second broker on the same PostgreSQL, Redis and queue prefix: streams on it hear of changes made
    // through the first one and by the worker.
    secondBroker = await createBroker(stack.config);
    const port = await freePort();
    await secondBroker.listen(port, '127.0.0.1');
    secondBaseUrl = `http://127.0.0.1:${port}`;
    [alice, bob, carol] = await enrollAll(stack, ['alice', 'bob', 'carol']);
  }, 60_000);

  afterAll(async () => {
    for (const stream of streams) stream.close();
    await secondBroker?.close();
    await stack?.close();
  }, 30_000);

  async function track(stream: Promise<OpenStream>): Promise<OpenStream> {
    const opened = await stream;
    streams.push(opened);
    return opened;
  }

  it('needs a session and an allowed or no Origin, and says hello with the server clock', async () => {
    const anonymous = await openStream(stack.baseUrl, null);
    expect(anonymous.status).toBe(401);
    expect(anonymous.contentType).toMatch(/^application\/json/);

    const foreign = await openStream(stack.baseUrl, alice.cookie, 'https://evil.example');
    expect(foreign.status).toBe(403);

    const stream = await track(openStream(stack.baseUrl, alice.cookie, stack.origin));
    expect(stream.status).toBe(200);
    expect(stream.contentType).toMatch(/^text\/event-stream/);
    const hello = await waitFor(
      async () => stream.events.find((event) => event.event === 'hello'),
      5000,
      'the hello event',
    );
    const serverTime = Date.parse(hello.data.serverTime as string);
    expect(Math.abs(serverTime - Date.now())).toBeLessThan(60_000);
  });

  it('delivers each committed change to the requester and the approvers on any broker, and to nobody else', async () => {
    const requesterStream = await track(openStream(secondBaseUrl, alice.cookie));
    const approverStream = await track(openStream(stack.baseUrl, bob.cookie));
    // carol is neither the requester nor an approver of api-admin-token.
    const outsiderStream = await track(openStream(secondBaseUrl, carol.cookie));
    for (const stream of [requesterStream, approverStream, outsiderStream]) expect(stream.status).toBe(200);

    const filed = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 2,
      justification: 'Live updates (e2e)',
    });
    expect(filed.status).toBe(201);
    const requestId = filed.body.id as string;
    await untilState(requesterStream, requestId, 'PENDING', 'PENDING on the second broker');
    await untilState(approverStream, requestId, 'PENDING', 'PENDING on the first broker');

    expect((await bob.decide(requestId, 'approve')).status).toBe(200);
    await untilState(requesterStream, requestId, 'APPROVED', 'APPROVED');
    expect((await alice.decide(requestId, 'activate')).status).toBe(200);
    await untilState(requesterStream, requestId, 'ACTIVE', 'ACTIVE');
    // The worker ends it at notAfter: its change reaches the stream through Redis too.
    await untilState(requesterStream, requestId, 'ENDED', 'ENDED from the worker');
    await untilState(approverStream, requestId, 'ENDED', 'ENDED for the approver');
    // A jwt grant is revoked in the same transaction that ends its request: the event says both.
    const ended = requesterStream.events.find(
      (event) =>
        event.event === 'request' && event.data.requestId === requestId && event.data.state === 'ENDED',
    );
    expect(ended?.data.grantState).toBe('REVOKED');

    expect(outsiderStream.events.filter((event) => event.event === 'request')).toEqual([]);
    // Ids and states only: nothing of the credential or the request's text travels.
    const sample = requesterStream.events.find((event) => event.event === 'request')!;
    expect(Object.keys(sample.data).sort()).toEqual(['grantState', 'requestId', 'state']);
  }, 30_000);
});

/** A GET as the page sends it on a live event or while polling: marked as background traffic. */
async function backgroundGet(stack: TestStack, cookie: string, route: string) {
  const response = await fetch(`${stack.baseUrl}${route}`, { headers: { cookie, 'x-background': '1' } });
  const body = (await response.json()) as { error?: { code?: string } };
  return { status: response.status, code: body.error?.code ?? null };
}

describe('live updates and the session (idle 3 s, heartbeat 1 s, 2 streams a person, 3 a broker)', () => {
  const IDLE = 3;
  let stack: TestStack;
  let dan: Person;
  let erin: Person;
  let fay: Person;
  const streams: OpenStream[] = [];

  beforeAll(async () => {
    stack = await startStack({
      worker: false,
      env: {
        SESSION_IDLE_SECONDS: String(IDLE),
        SESSION_ABSOLUTE_SECONDS: '300',
        SSE_HEARTBEAT_SECONDS: '1',
        SSE_MAX_STREAMS_PER_USER: '2',
        SSE_MAX_STREAMS: '3',
      },
    });
    [dan, erin, fay] = await enrollAll(stack, ['dan', 'erin', 'fay']);
  }, 60_000);

  afterAll(async () => {
    for (const stream of streams) stream.close();
    await stack?.close();
  }, 30_000);

  async function track(stream: Promise<OpenStream>): Promise<OpenStream> {
    const opened = await stream;
    streams.push(opened);
    return opened;
  }

  /** A new session of `person` (a fresh sign-in with their passkey): its cookie. */
  async function signIn(person: Person): Promise<string> {
    const anonymous = httpClient(stack, null);
    const options = await anonymous.post('/api/auth/login/options', {});
    const verified = await anonymous.post('/api/auth/login/verify', {
      response: person.authenticator.authenticate(options.body),
    });
    expect(verified.status).toBe(200);
    return sessionCookieFrom(verified.headers);
  }

  async function session(cookie: string) {
    const token = cookie.slice(cookie.indexOf('=') + 1);
    const { rows } = await stack.db.query(
      `SELECT extract(epoch FROM now() - last_seen_at)::float8 AS idle, end_reason AS "endReason",
              extract(epoch FROM last_seen_at - created_at)::float8 AS "lastSeenAfter"
         FROM sessions WHERE token_hash = $1`,
      [createHash('sha256').update(token).digest()],
    );
    return rows[0] as { idle: number; endReason: string | null; lastSeenAfter: number };
  }

  async function allClosed(): Promise<void> {
    for (const stream of streams) stream.close();
    // The broker frees a slot when it sees the connection close.
    await waitFor(
      async () => {
        const probe = await openStream(stack.baseUrl, await signIn(fay));
        probe.close();
        return probe.status === 200 ? true : undefined;
      },
      5000,
      'a free stream slot',
    );
  }

  it('does not keep a session alive with an open stream and background polls', async () => {
    const cookie = await signIn(dan);
    const stream = await track(openStream(stack.baseUrl, cookie));
    expect(stream.status).toBe(200);
    let answered = 0;
    // What a forgotten tab does: the stream stays open, and the page refetches in the background.
    const refused = await waitFor(
      async () => {
        const poll = await backgroundGet(stack, cookie, '/api/requests');
        if (poll.status === 200) {
          answered += 1;
          await new Promise((resolve) => setTimeout(resolve, 250));
          return undefined;
        }
        return poll;
      },
      (IDLE + 6) * 1000,
      'the idle limit to end the session',
    );
    expect(answered).toBeGreaterThan(1);
    expect(refused).toEqual({ status: 401, code: 'SESSION_EXPIRED' });
    expect(await session(cookie)).toMatchObject({ endReason: 'idle-timeout', lastSeenAfter: 0 });
    await waitFor(async () => (stream.ended() ? true : undefined), 5000, 'the stream to end');
  }, 20_000);

  it('stays alive while the person acts, and so does the stream', async () => {
    const cookie = await signIn(dan);
    const stream = await track(openStream(stack.baseUrl, cookie));
    expect(stream.status).toBe(200);
    const person = httpClient(stack, cookie);
    for (let step = 0; step < 3; step++) {
      await waitFor(
        async () => ((await session(cookie)).idle >= IDLE / 2 ? true : undefined),
        (IDLE + 5) * 1000,
        'half the idle limit',
      );
      expect((await person.get('/api/me')).status).toBe(200);
    }
    // Outlived the idle limit thanks to the person's own requests; heartbeats kept the stream open.
    const row = await session(cookie);
    expect(row.endReason).toBeNull();
    expect(row.lastSeenAfter).toBeGreaterThan(IDLE);
    expect(stream.ended()).toBe(false);
  }, 30_000);

  it('ends the stream when the person is suspended or signs out', async () => {
    await allClosed();
    const suspended = await track(openStream(stack.baseUrl, await signIn(erin)));
    const signingOut = await signIn(fay);
    const leaving = await track(openStream(stack.baseUrl, signingOut));
    expect([suspended.status, leaving.status]).toEqual([200, 200]);
    await stack.db.query(`UPDATE users SET status = 'suspended' WHERE username = 'erin'`);
    try {
      await waitFor(async () => (suspended.ended() ? true : undefined), 5000, 'the suspended stream to end');
    } finally {
      await stack.db.query(`UPDATE users SET status = 'active' WHERE username = 'erin'`);
    }
    expect((await httpClient(stack, signingOut).post('/api/auth/logout', {})).status).toBeLessThan(300);
    await waitFor(async () => (leaving.ended() ? true : undefined), 5000, 'the signed-out stream to end');
  }, 30_000);

  it('caps the streams of one person across sessions, and of one broker, with 429 and a stable code', async () => {
    await allClosed();
    const [first, second] = [await signIn(dan), await signIn(dan)];
    const held = [
      await track(openStream(stack.baseUrl, first)),
      await track(openStream(stack.baseUrl, second)),
    ];
    expect(held.map((stream) => stream.status)).toEqual([200, 200]);
    const refused = await openStream(stack.baseUrl, first);
    expect(refused).toMatchObject({ status: 429, code: 'LIVE_STREAMS_PER_USER', retryAfter: '10' });

    // Someone else still gets one: the third and last of this broker.
    const other = await track(openStream(stack.baseUrl, await signIn(erin)));
    expect(other.status).toBe(200);
    const full = await openStream(stack.baseUrl, await signIn(fay));
    expect(full).toMatchObject({ status: 429, code: 'LIVE_STREAMS_FULL' });

    held[0].close();
    const again = await track(
      waitFor(
        async () => {
          const attempt = await openStream(stack.baseUrl, second);
          if (attempt.status === 200) return attempt;
          return undefined;
        },
        5000,
        'a freed slot',
      ),
    );
    expect(again.status).toBe(200);
  }, 30_000);
});
