// GET /api/events (DESIGN §10): committed request changes reach the Server-Sent Events streams of the people
// who may see them, through Redis pub/sub, whichever broker holds the stream and whichever process (broker
// or worker) made the change.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { createBroker } from '../../apps/broker/bootstrap.js';
import { MAX_STREAMS_PER_SESSION } from '../../apps/broker/events/live-updates.js';
import { freePort } from '../../libs/devstack/free-port.js';
import { enrollAll, startStack, waitFor, type Person, type TestStack } from '../support/stack.js';

interface ServerSentEvent {
  event: string;
  data: Record<string, unknown>;
}

interface OpenStream {
  status: number;
  contentType: string | null;
  events: ServerSentEvent[];
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
  if (response.ok && response.body) void collect(response.body, events);
  else await response.body?.cancel();
  const contentType = response.headers.get('content-type');
  return { status: response.status, contentType, events, close: () => controller.abort() };
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
    // Aborted by close().
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

    expect(outsiderStream.events.filter((event) => event.event === 'request')).toEqual([]);
    // Ids and states only: nothing of the credential or the request's text travels.
    const sample = requesterStream.events.find((event) => event.event === 'request')!;
    expect(Object.keys(sample.data).sort()).toEqual(['grantState', 'requestId', 'state']);
  }, 30_000);

  it(`refuses more than ${MAX_STREAMS_PER_SESSION} streams per session, and frees a slot when one closes`, async () => {
    const open: OpenStream[] = [];
    for (let count = 0; count < MAX_STREAMS_PER_SESSION; count++) {
      open.push(await track(openStream(stack.baseUrl, carol.cookie)));
    }
    // carol already holds one stream on the second broker: the cap is per broker process.
    expect(open.map((stream) => stream.status)).toEqual(Array(MAX_STREAMS_PER_SESSION).fill(200));
    const refused = await openStream(stack.baseUrl, carol.cookie);
    expect(refused.status).toBe(429);

    open[0].close();
    const again = await waitFor(
      async () => {
        const attempt = await openStream(stack.baseUrl, carol.cookie);
        if (attempt.status === 200) return attempt;
        return undefined;
      },
      5000,
      'a freed slot',
    );
    streams.push(again);
  });
});
