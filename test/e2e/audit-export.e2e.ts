import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import { appendAuditEvent, type AuditInput } from '../../libs/audit/audit-log.js';
import { buildRequestBundle } from '../../libs/audit/bundle.js';
import { signAuditManifest, streamAuditExport, type AuditExportFilters } from '../../libs/audit/export.js';
import { canonicalDigest, type ExportFormat, type ExportManifest } from '../../libs/audit/manifest.js';
import { verifyBundle, verifyExport } from '../../libs/audit/verify.js';
import { createDataSource, runMigrations } from '../../libs/db/data-source.js';
import { createDatabase, dropDatabase } from '../../libs/devstack/databases.js';
import { SigningKeyStore } from '../../libs/keys/signing-key-store.js';
import { requestSubject, subjectDigest, type StoredRequest } from '../../libs/webauthn/step-up-binding.js';
import { enrolApprover, ORIGIN, RP_ID, stepUpEvidence, type Approver } from '../support/audit-chain.js';

// Real PostgreSQL: the keyset cursor, the chain head snapshot, the append-only trigger and the audit key store
// are what this proves; file-level tampering is covered by the unit tests in libs/audit.
const adminUrl = process.env.E2E_PG_ADMIN_URL ?? '';
const databases: string[] = [];
const FILLER_EVENTS = 1_150; // more than two pages of 500

interface Fixture {
  dataSource: DataSource;
  store: SigningKeyStore;
  requestId: string;
  otherRequestId: string;
  requester: Approver;
  alice: Approver;
  bob: Approver;
}

async function freshDatabase(): Promise<DataSource> {
  const name = `audit_export_${randomBytes(4).toString('hex')}`;
  databases.push(name);
  const dataSource = createDataSource(await createDatabase(adminUrl, name), { poolSize: 4 });
  await dataSource.initialize();
  await runMigrations(dataSource);
  return dataSource;
}

/** A synthetic event: the export must carry any action and payload, so these bypass the writer's typing. */
type SeedInput = Omit<AuditInput, 'action' | 'data'> & { action: string; data?: object };

function append(dataSource: DataSource, inputs: SeedInput[]): Promise<void> {
  return dataSource.transaction(async (manager) => {
    for (const input of inputs) await appendAuditEvent(manager, input as unknown as AuditInput);
  });
}

/** Users, a policy version, two requests with genuine approvals, an activation and a grant, plus filler events. */
async function seed(dataSource: DataSource): Promise<Fixture> {
  const requester = enrolApprover('carol');
  const alice = enrolApprover('alice');
  const bob = enrolApprover('bob');
  for (const person of [requester, alice, bob]) {
    await dataSource.query('INSERT INTO users (id, username, display_name) VALUES ($1, $2, $2)', [
      person.userId,
      person.username,
    ]);
  }
  const policy = { groups: { approvers: ['alice', 'bob'] }, entitlements: [{ id: 'prod-db-write' }] };
  const policyHash = canonicalDigest(policy);
  await dataSource.query(`INSERT INTO policy_versions (hash, content, loaded_by) VALUES ($1, $2, 'system')`, [
    policyHash,
    policy,
  ]);

  const insertRequest = async (entitlementId: string): Promise<StoredRequest> => {
    const row: StoredRequest = {
      id: randomUUID(),
      requesterId: requester.userId,
      entitlementId,
      policyHash,
      scope: { grantRoles: ['app_rw'] },
      durationSeconds: 3600,
      justification: 'CHG-7: rebuild, "carefully"',
      ticket: 'CHG-7',
      notBefore: new Date('2026-03-01T09:30:00.123Z'),
      breakGlass: false,
      extendsRequestId: null,
      sshPublicKey: null,
    };
    await dataSource.query(
      `INSERT INTO elevation_requests (id, requester_id, entitlement_id, policy_hash, scope, duration_seconds,
         justification, ticket, not_before, break_glass, approvals_required, state, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false, 2, 'ACTIVE', now())`,
      [
        row.id,
        row.requesterId,
        row.entitlementId,
        row.policyHash,
        row.scope,
        row.durationSeconds,
        row.justification,
        row.ticket,
        row.notBefore,
      ],
    );
    return row;
  };
  const request = await insertRequest('prod-db-write');
  const other = await insertRequest('billing-read');
  const decide = (
    approver: Approver,
    subject: ReturnType<typeof requestSubject>,
    decision: 'approve' | 'deny',
  ) => ({
    actorId: approver.userId,
    action: 'approval.recorded',
    subjectType: 'request',
    subjectId: subject.id,
    requestId: subject.id,
    data: {
      approver: approver.username,
      decision,
      comment: 'ok, "go"\nahead',
      evidence: stepUpEvidence(approver, {
        action: decision,
        subjectId: subject.id,
        subjectDigest: subjectDigest(subject),
      }),
    },
  });
  const subject = requestSubject(request);
  const otherSubject = requestSubject(other);
  const created = (value: ReturnType<typeof requestSubject>) => ({
    actorId: requester.userId,
    action: 'request.created',
    subjectType: 'request',
    subjectId: value.id,
    requestId: value.id,
    data: { requester: 'carol', subject: value },
  });
  await append(dataSource, [created(subject)]);
  await append(dataSource, [created(otherSubject)]);
  await append(dataSource, [decide(alice, subject, 'approve')]);
  await append(dataSource, [decide(bob, subject, 'approve')]);
  await append(dataSource, [decide(bob, otherSubject, 'deny')]);
  const grantId = randomUUID();
  await dataSource.query(
    `INSERT INTO grants (id, request_id, connector, connector_type, external_ref, fingerprint, issued_at, not_after, state)
     VALUES ($1, $2, 'postgres-prod', 'postgres', 'jit_role_1', 'sha256:abc', now(), now() + interval '1 hour', 'ACTIVE')`,
    [grantId, request.id],
  );
  await append(dataSource, [
    {
      actorId: requester.userId,
      action: 'request.activated',
      subjectType: 'request',
      subjectId: request.id,
      requestId: request.id,
      data: {
        grantId,
        evidence: stepUpEvidence(requester, {
          action: 'activate',
          subjectId: request.id,
          subjectDigest: subjectDigest(subject),
        }),
      },
    },
    {
      actorId: requester.userId,
      action: 'grant.issued',
      subjectType: 'grant',
      subjectId: grantId,
      requestId: request.id,
      data: { fingerprint: 'sha256:abc' },
    },
  ]);
  const filler = Array.from({ length: FILLER_EVENTS }, (_, index) => ({
    actorId: 'system',
    action: 'sweep.ran',
    subjectType: 'maintenance',
    subjectId: `sweep-${index}`,
    data: { requeued: index % 3, note: 'a, "b"\r\nc' },
  }));
  for (let start = 0; start < filler.length; start += 200)
    await append(dataSource, filler.slice(start, start + 200));

  const store = new SigningKeyStore(dataSource, randomBytes(32));
  return { dataSource, store, requestId: request.id, otherRequestId: other.id, requester, alice, bob };
}

/** A sink; `slow` acknowledges each chunk only after `onChunk` has run (and been awaited). */
function collector(onChunk?: () => Promise<void>): { out: Writable; text: () => string } {
  let text = '';
  const out = new Writable({
    highWaterMark: 1024,
    write(chunk, _encoding, callback) {
      text += String(chunk);
      if (onChunk) onChunk().then(() => callback(), callback);
      else callback();
    },
  });
  return { out, text: () => text };
}

async function exportOf(
  fixture: Fixture,
  format: ExportFormat,
  filters: AuditExportFilters = {},
  out = collector(),
): Promise<{ text: string; manifest: ExportManifest }> {
  const manifest = await streamAuditExport({
    source: fixture.dataSource,
    format,
    filters,
    out: out.out,
    signManifest: signAuditManifest(fixture.store),
    exporter: fixture.alice.userId,
    rpId: RP_ID,
    origins: [ORIGIN],
  });
  return { text: out.text(), manifest };
}

let fixture: Fixture;

beforeAll(async () => {
  if (!adminUrl) throw new Error('E2E_PG_ADMIN_URL is not set: run the e2e tier through jest globalSetup');
  fixture = await seed(await freshDatabase());
}, 120_000);

afterAll(async () => {
  await fixture?.dataSource.destroy();
  for (const name of databases) await dropDatabase(adminUrl, name);
});

describe('audit export against PostgreSQL', () => {
  it.each(['ndjson', 'csv', 'json'] as const)(
    'exports the whole chain as %s and it verifies against the store JWKS',
    async (format) => {
      const { text, manifest } = await exportOf(fixture, format);
      const events = 7 + FILLER_EVENTS;
      expect(manifest).toMatchObject({
        count: events,
        firstSeq: 1,
        lastSeq: events,
        chainHead: { seq: events },
      });
      const jwks = await fixture.store.publicJwks('audit');
      expect(await verifyExport(text, { jwks })).toMatchObject({
        ok: true,
        keyPinned: true,
        counts: { events, approvals: 3, assertions: 4, requests: 2 },
      });
    },
  );

  it('applies each filter in SQL, and the filtered exports verify', async () => {
    const jwks = await fixture.store.publicJwks('audit');
    const cases: Array<[AuditExportFilters, number]> = [
      [{ requestId: fixture.requestId }, 5],
      [{ entitlementId: 'billing-read' }, 2],
      [{ actorId: fixture.bob.userId }, 2],
      [{ action: 'approval.recorded' }, 3],
      [{ action: 'sweep.ran', to: new Date(Date.now() + 60_000) }, FILLER_EVENTS],
      [{ from: new Date(Date.now() + 60_000) }, 0],
    ];
    for (const [filters, count] of cases) {
      const { text, manifest } = await exportOf(fixture, 'ndjson', filters);
      expect({ filters, count: manifest.count }).toEqual({ filters, count });
      expect(await verifyExport(text, { jwks })).toMatchObject({ ok: true });
    }
  });

  it('exports a consistent snapshot while events keep being appended', async () => {
    const dataSource = await freshDatabase();
    const own = await seed(dataSource);
    try {
      const headBefore = 7 + FILLER_EVENTS;
      // Each chunk the sink takes (the header, each page of 500, the manifest) is held until one more event
      // has been committed, so the chain grows between every page read.
      let appended = 0;
      const slow = collector(async () => {
        appended++;
        await append(dataSource, [
          { actorId: 'system', action: 'late.event', subjectType: 'test', subjectId: `late-${appended}` },
        ]);
      });
      const { text, manifest } = await exportOf(own, 'csv', {}, slow);
      expect(appended).toBeGreaterThanOrEqual(4);
      expect(manifest).toMatchObject({
        count: headBefore,
        lastSeq: headBefore,
        chainHead: { seq: headBefore },
      });
      expect(await verifyExport(text, { jwks: await own.store.publicJwks('audit') })).toMatchObject({
        ok: true,
      });
      const [{ seq }] = await dataSource.query('SELECT seq FROM audit_chain_head');
      expect(Number(seq)).toBe(headBefore + appended);
    } finally {
      await dataSource.destroy();
    }
  });

  it('builds a request bundle that verifies, and answers null for an unknown request', async () => {
    const signing = {
      signManifest: signAuditManifest(fixture.store),
      exporter: 'auditor',
      rpId: RP_ID,
      origins: [ORIGIN],
    };
    const bundle = await buildRequestBundle(fixture.dataSource, fixture.requestId, signing);
    expect(bundle).not.toBeNull();
    expect(bundle?.events.map((event) => event.action)).toEqual([
      'request.created',
      'approval.recorded',
      'approval.recorded',
      'request.activated',
      'grant.issued',
    ]);
    expect(bundle?.grants).toMatchObject([
      { fingerprint: 'sha256:abc', state: 'ACTIVE', revocationLagMs: null },
    ]);
    expect(bundle?.request).toMatchObject({ id: fixture.requestId, notBefore: '2026-03-01T09:30:00.123Z' });
    const jwks = await fixture.store.publicJwks('audit');
    expect(await verifyBundle(JSON.stringify(bundle), { jwks })).toMatchObject({
      ok: true,
      counts: { events: 5, approvals: 2, assertions: 3, requests: 1 },
    });
    expect(await buildRequestBundle(fixture.dataSource, randomUUID(), signing)).toBeNull();
    await expect(buildRequestBundle(fixture.dataSource, 'nope', signing)).rejects.toMatchObject({
      code: 'INVALID_ID',
    });
  });

  it('names the seq of a row edited in the database behind the append-only trigger', async () => {
    const dataSource = await freshDatabase();
    const own = await seed(dataSource);
    try {
      await dataSource.transaction(async (manager) => {
        await manager.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete');
        await manager.query(
          `UPDATE audit_events SET data = jsonb_set(data, '{comment}', '"changed"') WHERE seq = 4`,
        );
        await manager.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete');
      });
      const { text } = await exportOf(own, 'ndjson');
      expect(await verifyExport(text, { jwks: await own.store.publicJwks('audit') })).toEqual({
        ok: false,
        seq: 4,
        reason: 'hash does not match the event content',
      });
    } finally {
      await dataSource.destroy();
    }
  });
});
