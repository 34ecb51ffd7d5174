import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import canonicalize from 'canonicalize';
import { createRemoteJWKSet, flattenedVerify } from 'jose';
import { DataSource } from 'typeorm';
import { auditVerify } from '../../apps/cli/audit-verify.js';
import { chainHash } from '../../libs/audit/chain.js';
import { appendCheckpoint } from '../../libs/audit/checkpoint-log.js';
import {
  EventsDigest,
  EXPORT_COLUMNS,
  manifestSignerFromKey,
  type ExportedEvent,
  type ExportFormat,
  type ExportManifest,
} from '../../libs/audit/manifest.js';
import { verifyBundle, verifyExport, type VerifyResult } from '../../libs/audit/verify.js';
import { canonicalJson } from '../../libs/domain/canonical-json.js';
import { ConnectorRegistry } from '../../libs/elevation/connector-registry.js';
import {
  clientAs,
  enrollAll,
  PROJECT_ROOT,
  startStack,
  waitFor,
  type Person,
  type TestStack,
} from '../support/stack.js';

// The audit API end to end: real broker, worker, PostgreSQL and Redis. Three requests (approved → active →
// ended by the worker, denied, break-glass), then what an auditor downloads is verified offline, and every
// kind of tampering is named by seq.
const POLICY_DIR = path.join(PROJECT_ROOT, 'test/fixtures/policies/audit');
const AUDITOR = 'erin';
const ADMIN = 'fred';
// A comma, a quote and a newline: CSV must quote them, JSON must escape them, and both must read back exact.
const JUSTIFICATION = 'Rotate the API keys, "carefully"\nthen re-issue (CHG-7)';

interface Downloaded {
  status: number;
  headers: Headers;
  text: string;
}

/** POST /api/audit/export as `person` with an `audit.export` step-up over exactly this body. */
async function exportAs(
  stack: TestStack,
  person: Person,
  body: Record<string, unknown>,
): Promise<Downloaded> {
  const stepUp = await person.stepUp('audit.export', 'audit', body);
  const response = await fetch(`${stack.baseUrl}/api/audit/export`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: person.cookie, origin: stack.origin },
    body: JSON.stringify({ ...body, stepUp }),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** An NDJSON export split into its events and its manifest line. */
function ndjsonParts(text: string): { events: ExportedEvent[]; manifest: ExportManifest } {
  const lines = text.trimEnd().split('\n');
  return {
    events: lines.slice(0, -1).map((line) => JSON.parse(line) as ExportedEvent),
    manifest: JSON.parse(lines.at(-1)!) as ExportManifest,
  };
}

/** Written as the broker writes NDJSON (JCS lines), which is all the verifier accepts. */
function ndjsonText(events: readonly ExportedEvent[], manifest: ExportManifest): string {
  return [...events, manifest].map((item) => canonicalJson(item)).join('\n') + '\n';
}

/** What an attacker who can rewrite the file would do after an edit: recompute every hash from `from` on. */
function rechained(events: ExportedEvent[], from: number): ExportedEvent[] {
  const out = events.map((event) => structuredClone(event));
  for (let index = from; index < out.length; index++) {
    const prevHash = index === 0 ? Buffer.alloc(32) : Buffer.from(out[index - 1].hash, 'hex');
    const { hash: _hash, ...body } = out[index];
    body.prevHash = prevHash.toString('hex');
    out[index] = { ...body, hash: chainHash(prevHash, body).toString('hex') };
  }
  return out;
}

/** A different base64url character in the middle of a value: always different decoded bytes. */
function flipMiddle(value: string): string {
  const at = Math.floor(value.length / 2);
  return `${value.slice(0, at)}${value[at] === 'A' ? 'B' : 'A'}${value.slice(at + 1)}`;
}

/** An independent RFC 4180 reader (records end in CRLF; quotes double inside quoted fields). */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  for (let index = 0; index < text.length; index++) {
    const char = text[index];
    if (quoted) {
      if (char !== '"') field += char;
      else if (text[index + 1] === '"') {
        field += '"';
        index++;
      } else quoted = false;
    } else if (char === '"') quoted = true;
    else if (char === ',') {
      record.push(field);
      field = '';
    } else if (char === '\r' && text[index + 1] === '\n') {
      record.push(field);
      records.push(record);
      record = [];
      field = '';
      index++;
    } else field += char;
  }
  if (quoted) throw new Error('unterminated quoted field');
  if (field !== '' || record.length > 0) throw new Error('the last record has no CRLF');
  return records;
}

/** eventsDigest as a manifest states it: sha256 over the events' raw hashes, in order. */
function eventsDigestOf(events: readonly ExportedEvent[]): string {
  const digest = new EventsDigest();
  for (const event of events) digest.add(event.hash);
  return digest.hex();
}

function failedAt(result: VerifyResult): { seq: number | null; reason: string } | 'ok' {
  return result.ok ? 'ok' : { seq: result.seq, reason: result.reason };
}

describe('audit API: events, signed exports, bundles, checkpoints (real broker and worker)', () => {
  let stack: TestStack;
  let alice: Person;
  let bob: Person;
  let carol: Person;
  let auditor: Person;
  let admin: Person;
  let jwks: Array<Record<string, unknown>>;
  const requestIds = { approved: '', denied: '', breakGlass: '' };
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'jit-audit-api-'));
    stack = await startStack({
      policyDir: POLICY_DIR,
      env: { SWEEP_INTERVAL_SECONDS: '1', CHECKPOINT_INTERVAL_SECONDS: '1' },
    });
    [alice, bob, carol, auditor, admin] = await enrollAll(stack, ['alice', 'bob', 'carol', AUDITOR, ADMIN], {
      [AUDITOR]: ['auditor'],
      [ADMIN]: ['admin'],
    });

    // 1. Approved, activated, ended by the worker when its 2 s run out.
    const approved = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 2,
      justification: JUSTIFICATION,
    });
    expect(approved.status).toBe(201);
    requestIds.approved = approved.body.id;
    expect((await bob.decide(requestIds.approved, 'approve', { comment: 'ok, "go" ahead' })).body.state).toBe(
      'APPROVED',
    );
    const activated = await alice.decide(requestIds.approved, 'activate');
    expect(activated.status).toBe(200);

    // 2. Denied.
    const denied = await carol.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 600,
      justification: 'Look at the billing job',
    });
    expect(denied.status).toBe(201);
    requestIds.denied = denied.body.id;
    expect((await bob.decide(requestIds.denied, 'deny', { reason: 'no ticket, no access' })).body.state).toBe(
      'DENIED',
    );

    // 3. Break-glass: active at once with a step-up bound to the entitlement and this exact body.
    const breakGlassBody = {
      entitlementId: 'api-breakglass-token',
      durationSeconds: 600,
      justification: 'INC-9: API outage, rotating the signing token',
    };
    const breakGlass = await alice.post('/api/requests', {
      ...breakGlassBody,
      stepUp: await alice.stepUp('break-glass', breakGlassBody.entitlementId, breakGlassBody),
    });
    expect(breakGlass.status).toBe(201);
    expect(breakGlass.body.request.state).toBe('ACTIVE');
    requestIds.breakGlass = breakGlass.body.request.id;

    await waitFor(
      async () =>
        // The request ENDED when its revocation fell due; the grant is REVOKED once the connector confirmed.
        (await alice.get(`/api/requests/${requestIds.approved}`)).body.grant?.state === 'REVOKED'
          ? true
          : undefined,
      20_000,
      'the worker to revoke the 2 s grant',
    );
    // The worker signs the head once it has moved; wait until a checkpoint covers the revoked grant.
    await waitFor(
      async () => {
        const { rows } = await stack.db.query(
          `SELECT 1 FROM audit_events c
            WHERE c.action = 'audit.checkpoint'
              AND c.seq > (SELECT max(seq) FROM audit_events WHERE action = 'grant.revoked')`,
        );
        return rows.length > 0 ? true : undefined;
      },
      20_000,
      'an audit.checkpoint after the request ended',
    );
    const keys = await clientAs(stack, null).get('/.well-known/audit-jwks.json');
    expect(keys.status).toBe(200);
    jwks = keys.body.keys;
  }, 90_000);

  afterAll(async () => {
    await stack?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }, 30_000);

  it('publishes the audit key publicly as an Ed25519 JWKS without its private part', () => {
    expect(jwks).toEqual([
      expect.objectContaining({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', kid: expect.any(String) }),
    ]);
    expect(jwks[0]).not.toHaveProperty('d');
  });

  it('lists events as exported with filters and seq cursors, for auditors and admins only', async () => {
    const pages: ExportedEvent[][] = [];
    let cursor: string | null = null;
    do {
      const query: string = `requestId=${requestIds.approved}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await auditor.get(`/api/audit/events?${query}`);
      expect(page.status).toBe(200);
      pages.push(page.body.items);
      cursor = page.body.nextCursor;
      if (cursor !== null) expect(cursor).toBe(String(page.body.items.at(-1).seq));
    } while (cursor !== null);
    const events = pages.flat();
    expect(pages.slice(0, -1).every((page) => page.length === 2)).toBe(true);
    expect(events.map((event) => event.action)).toEqual([
      'request.created',
      'approval.recorded',
      'request.approved',
      'request.activated',
      'grant.issued',
      'request.ended',
      'grant.revoked',
    ]);
    expect(Object.keys(events[0]).sort()).toEqual([...EXPORT_COLUMNS].sort());
    expect(events.every((event) => event.requestId === requestIds.approved)).toBe(true);

    const byAction = await admin.get(`/api/audit/events?action=approval.recorded&actorId=${bob.userId}`);
    expect(byAction.status).toBe(200);
    expect(byAction.body.items.map((event: ExportedEvent) => event.data.decision)).toEqual([
      'approve',
      'deny',
    ]);
    expect(byAction.body.nextCursor).toBeNull();
    const byEntitlement = await auditor.get('/api/audit/events?entitlementId=api-breakglass-token&limit=500');
    expect(byEntitlement.body.items.map((event: ExportedEvent) => event.action)).toEqual(
      expect.arrayContaining(['request.created', 'break-glass.activated', 'grant.issued']),
    );
    const future = await auditor.get('/api/audit/events?from=2999-01-01T00:00:00Z');
    expect(future.body).toEqual({ items: [], nextCursor: null, usernames: {}, actorId: null });

    for (const person of [carol, alice, bob]) {
      const refused = await person.get('/api/audit/events');
      expect({ status: refused.status, code: refused.body.error?.code }).toEqual({
        status: 403,
        code: 'FORBIDDEN',
      });
    }
    for (const query of [
      'requestId=not-a-uuid',
      'from=yesterday',
      'from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z',
      'limit=0',
      'limit=501',
      'cursor=abc',
      'cursor=-1',
      'colour=blue',
      'entitlementId=Bad%20Id',
    ]) {
      const bad = await auditor.get(`/api/audit/events?${query}`);
      expect({ query, status: bad.status, code: bad.body.error?.code }).toEqual({
        query,
        status: 400,
        code: 'VALIDATION_FAILED',
      });
    }
  });

  it.each(['ndjson', 'csv', 'json'] as const)(
    'streams a %s export that verifies pinned to /.well-known/audit-jwks.json, and audits it',
    async (format: ExportFormat) => {
      const downloaded = await exportAs(stack, auditor, { format, filters: {} });
      expect(downloaded.status).toBe(200);
      expect(downloaded.headers.get('content-type')).toBe(
        {
          ndjson: 'application/x-ndjson; charset=utf-8',
          csv: 'text/csv; charset=utf-8; header=present',
          json: 'application/json; charset=utf-8',
        }[format],
      );
      expect(downloaded.headers.get('content-disposition')).toMatch(
        new RegExp(`^attachment; filename="audit-\\d{8}T\\d{6}Z\\.${format}"$`),
      );
      expect(downloaded.headers.get('cache-control')).toBe('no-store');

      const result = await verifyExport(downloaded.text, { jwks });
      expect(result).toMatchObject({ ok: true, format, keyPinned: true });
      if (!result.ok) return;
      // approve + deny; their assertions, the activation, the break-glass, and earlier exports' step-ups.
      expect(result.counts.approvals).toBe(2);
      expect(result.counts.assertions).toBeGreaterThanOrEqual(4);
      expect(result.counts.requests).toBe(3);
      expect(result.counts.checkpoints).toBeGreaterThanOrEqual(1);
      expect(result.manifest).toMatchObject({ firstSeq: 1, exporter: auditor.userId, filters: {} });

      // The export itself is audited after the file, with what its manifest signed.
      const { rows } = await stack.db.query(
        `SELECT seq, actor_id, data FROM audit_events WHERE action = 'audit.exported' ORDER BY seq DESC LIMIT 1`,
      );
      expect(rows[0].actor_id).toBe(auditor.userId);
      expect(Number(rows[0].seq)).toBeGreaterThan(result.manifest.chainHead.seq);
      expect(rows[0].data).toMatchObject({
        format,
        filters: {},
        params: { format, filters: {} },
        manifest: {
          count: result.manifest.count,
          lastSeq: result.manifest.lastSeq,
          jws: result.manifest.jws,
        },
        evidence: { action: 'audit.export', subjectId: 'audit', userId: auditor.userId },
      });
    },
  );

  it('`cli audit verify <file> --jwks <url>` pins the key fetched from the broker', async () => {
    const downloaded = await exportAs(stack, auditor, { format: 'ndjson', filters: {} });
    const file = path.join(scratch, 'audit.ndjson');
    await writeFile(file, downloaded.text);
    const lines: string[] = [];
    const output = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
    const code = await auditVerify([file, '--jwks', `${stack.baseUrl}/.well-known/audit-jwks.json`], output);
    expect({ code, lines }).toMatchObject({
      code: 0,
      lines: [expect.stringMatching(/^OK: /), expect.any(String), expect.stringMatching(/pinned by --jwks/)],
    });
    // The same genuine file without a pinned key is not a success: exit 3.
    expect(await auditVerify([file], { log: () => {}, error: () => {} })).toBe(3);
  });

  it('writes CSV with a header row and RFC 4180 quoting that reads back exactly', async () => {
    const { text } = await exportAs(stack, auditor, {
      format: 'csv',
      filters: { requestId: requestIds.approved },
    });
    const records = parseCsv(text);
    expect(records[0]).toEqual([...EXPORT_COLUMNS]);
    expect(records.every((record) => record.length === EXPORT_COLUMNS.length)).toBe(true);
    expect(records.at(-1)![0]).toBe('#manifest');
    const created = records.find((record) => record[3] === 'request.created')!;
    const data = JSON.parse(created[EXPORT_COLUMNS.indexOf('data')]);
    expect(data.subject.justification).toBe(JUSTIFICATION);
    expect(data.justification).toBe(JUSTIFICATION);
    // The data field holds commas and quotes, so it is quoted and its quotes doubled; the newline travels
    // JSON-escaped inside it (raw CR/LF inside quoted fields is covered by libs/audit/csv.spec.ts).
    expect(text).toContain(',"{""');
    expect(text).toContain(
      '""justification"":""Rotate the API keys, \\""carefully\\""\\nthen re-issue (CHG-7)""',
    );
    const approval = records.find((record) => record[3] === 'approval.recorded')!;
    expect(JSON.parse(approval[7]).comment).toBe('ok, "go" ahead');
    expect(await verifyExport(text, { jwks })).toMatchObject({ ok: true, format: 'csv' });
  });

  it("an export's and a bundle's manifest pass jose.flattenedVerify against /.well-known/audit-jwks.json", async () => {
    // What an auditor without this code does: jose, canonicalize and the broker's published keys.
    const keys = createRemoteJWKSet(new URL(`${stack.baseUrl}/.well-known/audit-jwks.json`));
    const verifyManifest = async (manifest: ExportManifest) => {
      const { jws, ...unsigned } = manifest;
      expect(unsigned).not.toHaveProperty('signature');
      const payload = Buffer.from(canonicalize(unsigned)!, 'utf8').toString('base64url');
      return flattenedVerify({ ...jws!, payload }, keys, { algorithms: ['EdDSA'] });
    };
    const { manifest } = ndjsonParts(
      (await exportAs(stack, auditor, { format: 'ndjson', filters: {} })).text,
    );
    const verified = await verifyManifest(manifest);
    expect(verified.protectedHeader).toEqual({ alg: 'EdDSA', kid: jwks[0].kid });
    const bundle = await auditor.get(`/api/audit/requests/${requestIds.approved}/bundle`);
    await expect(verifyManifest(bundle.body.manifest)).resolves.toMatchObject({
      protectedHeader: { kid: jwks[0].kid },
    });
    // The signature covers the manifest: one changed field and jose refuses it.
    await expect(verifyManifest({ ...manifest, exporter: admin.userId })).rejects.toThrow(
      'signature verification failed',
    );
  });

  it('bundles each request so that verifyBundle accepts it, and refuses others', async () => {
    for (const [which, id] of Object.entries(requestIds)) {
      const bundle = await auditor.get(`/api/audit/requests/${id}/bundle`);
      expect({ which, status: bundle.status }).toEqual({ which, status: 200 });
      expect(bundle.headers.get('cache-control')).toBe('no-store');
      expect(await verifyBundle(bundle.body, { jwks })).toMatchObject({
        ok: true,
        format: 'bundle',
        keyPinned: true,
      });
    }
    const approved = await admin.get(`/api/audit/requests/${requestIds.approved}/bundle`);
    expect(approved.body.request).toMatchObject({ state: 'ENDED', justification: JUSTIFICATION });
    expect(approved.body.grants).toEqual([
      expect.objectContaining({ state: 'REVOKED', revocationLagMs: expect.any(Number) }),
    ]);
    const breakGlass = await auditor.get(`/api/audit/requests/${requestIds.breakGlass}/bundle`);
    expect(breakGlass.body.events.map((event: ExportedEvent) => event.action)).toEqual(
      expect.arrayContaining(['request.created', 'break-glass.activated']),
    );

    expect((await carol.get(`/api/audit/requests/${requestIds.denied}/bundle`)).status).toBe(403);
    const unknown = await auditor.get('/api/audit/requests/0190f3a2-7c1e-7b3a-9d4e-5f6a7b8c9d0e/bundle');
    expect({ status: unknown.status, code: unknown.body.error.code }).toEqual({
      status: 404,
      code: 'REQUEST_NOT_FOUND',
    });
    const malformed = await auditor.get('/api/audit/requests/nope/bundle');
    expect({ status: malformed.status, code: malformed.body.error.code }).toEqual({
      status: 400,
      code: 'INVALID_ID',
    });
  });

  it('refuses exports: 403 before any step-up for non-auditors, 401 without a step-up, 4xx for bad input', async () => {
    const body = { format: 'ndjson', filters: {} };
    // Role first: neither a requester nor an admin is asked for a step-up they could not use.
    for (const person of [carol, admin]) {
      const refused = await person.post('/api/audit/export', body);
      expect({ who: person.username, status: refused.status, code: refused.body.error.code }).toEqual({
        who: person.username,
        status: 403,
        code: 'FORBIDDEN',
      });
    }
    const withoutStepUp = await auditor.post('/api/audit/export', body);
    expect({ status: withoutStepUp.status, code: withoutStepUp.body.error.code }).toEqual({
      status: 401,
      code: 'STEP_UP_REQUIRED',
    });
    for (const bad of [
      { format: 'xml', filters: {} },
      { format: 'csv', filters: { requestId: 'nope' } },
      { format: 'csv', filters: { colour: 'blue' } },
      { format: 'csv', filters: { from: '2030-01-02T00:00:00Z', to: '2030-01-01T00:00:00Z' } },
      { format: 'csv', filters: 'all' },
    ]) {
      const refused = await auditor.post('/api/audit/export', bad);
      expect({ bad, status: refused.status, code: refused.body.error.code }).toEqual({
        bad,
        status: 400,
        code: 'VALIDATION_FAILED',
      });
      expect(refused.headers.get('content-disposition')).toBeNull();
    }
    // What was confirmed is what runs: a step-up over NDJSON does not export CSV.
    const stepUp = await auditor.stepUp('audit.export', 'audit', body);
    const switched = await auditor.post('/api/audit/export', { format: 'csv', filters: {}, stepUp });
    expect({ status: switched.status, code: switched.body.error.code }).toEqual({
      status: 401,
      code: 'STEP_UP_SUBJECT_CHANGED',
    });
  });

  it('signs checkpoints of the chain head that the verifier checks, and skips an unmoved head', async () => {
    const { text } = await exportAs(stack, auditor, { format: 'ndjson', filters: {} });
    const { events, manifest } = ndjsonParts(text);
    const checkpoints = events.filter((event) => event.action === 'audit.checkpoint');
    expect(checkpoints.length).toBeGreaterThanOrEqual(1);
    for (const checkpoint of checkpoints) {
      const covered = events.find((event) => event.seq === checkpoint.seq - 1)!;
      expect(checkpoint.data).toMatchObject({
        seq: covered.seq,
        hash: covered.hash,
        kid: jwks[0].kid,
        alg: 'EdDSA',
      });
      expect(covered.action).not.toBe('audit.checkpoint');
    }
    // A forged checkpoint (signature changed, chain recomputed around it) is named by its seq.
    const index = events.indexOf(checkpoints[0]);
    const forged = structuredClone(events);
    forged[index].data.signature = flipMiddle(String(forged[index].data.signature));
    expect(failedAt(await verifyExport(ndjsonText(rechained(forged, index), manifest), { jwks }))).toEqual({
      seq: checkpoints[0].seq,
      reason: `the checkpoint signature does not verify with key ${JSON.stringify(jwks[0].kid)}`,
    });

    // Run directly: twice in a row, the second finds its own checkpoint at the head and writes nothing.
    const dataSource = stack.broker.get(DataSource);
    const keys = stack.broker.get(ConnectorRegistry).signingKeys;
    const first = await appendCheckpoint(dataSource, keys);
    expect(['written', 'skipped']).toContain(first.status);
    expect(await appendCheckpoint(dataSource, keys)).toMatchObject({
      status: 'skipped',
      reason: 'head-unchanged',
    });
  });

  it('names the seq of every kind of tampering with a downloaded export', async () => {
    const { text } = await exportAs(stack, auditor, { format: 'ndjson', filters: {} });
    const { events, manifest } = ndjsonParts(text);
    expect(failedAt(await verifyExport(text, { jwks }))).toBe('ok');
    const indexOf = (action: string, requestId: string) =>
      events.findIndex((event) => event.action === action && event.requestId === requestId);
    const created = indexOf('request.created', requestIds.approved);
    const approval = indexOf('approval.recorded', requestIds.approved);
    const seqAt = (index: number) => events[index].seq;
    const lines = text.trimEnd().split('\n');

    // One byte of an event: its hash no longer matches.
    const oneByte = [...lines];
    oneByte[created] = oneByte[created].replace('Rotate the API keys', 'Rotate the API keyz');
    expect(failedAt(await verifyExport(oneByte.join('\n'), { jwks }))).toEqual({
      seq: seqAt(created),
      reason: 'hash does not match the event content',
    });

    // An approval's signature, or its clientDataJSON: the hash breaks; and if the forger recomputes the chain,
    // the WebAuthn assertion itself no longer verifies.
    const signature = structuredClone(events);
    const evidence = signature[approval].data.evidence as Record<string, string>;
    evidence.signature = flipMiddle(evidence.signature);
    expect(failedAt(await verifyExport(ndjsonText(signature, manifest), { jwks }))).toEqual({
      seq: seqAt(approval),
      reason: 'hash does not match the event content',
    });
    expect(
      failedAt(await verifyExport(ndjsonText(rechained(signature, approval), manifest), { jwks })),
    ).toEqual({
      seq: seqAt(approval),
      reason: expect.stringMatching(/^assertion signature does not verify/),
    });
    const clientData = structuredClone(events);
    const clientEvidence = clientData[approval].data.evidence as Record<string, string>;
    const parsed = JSON.parse(Buffer.from(clientEvidence.clientDataJSON, 'base64url').toString('utf8'));
    parsed.challenge = flipMiddle(parsed.challenge);
    clientEvidence.clientDataJSON = Buffer.from(JSON.stringify(parsed)).toString('base64url');
    expect(failedAt(await verifyExport(ndjsonText(clientData, manifest), { jwks }))).toEqual({
      seq: seqAt(approval),
      reason: 'hash does not match the event content',
    });
    expect(
      failedAt(await verifyExport(ndjsonText(rechained(clientData, approval), manifest), { jwks })),
    ).toEqual({
      seq: seqAt(approval),
      reason: 'clientDataJSON.challenge is not the step-up challenge recomputed from the evidence',
    });

    // A deleted line, two lines swapped: the seq that is out of place.
    const deleted = lines.filter((_line, index) => index !== approval);
    expect(failedAt(await verifyExport(deleted.join('\n'), { jwks }))).toEqual({
      seq: seqAt(approval) + 1,
      reason: `expected seq ${seqAt(approval)}, found ${seqAt(approval) + 1} (an unfiltered export holds every event)`,
    });
    const swapped = [...lines];
    [swapped[created], swapped[created + 1]] = [swapped[created + 1], swapped[created]];
    expect(failedAt(await verifyExport(swapped.join('\n'), { jwks }))).toEqual({
      seq: seqAt(created) + 1,
      reason: `expected seq ${seqAt(created)}, found ${seqAt(created) + 1} (an unfiltered export holds every event)`,
    });

    // A forged manifest: the file cut short and re-signed with the attacker's own key under the broker's kid.
    // Before the first checkpoint it is consistent with the key the manifest embeds: not a success unless that
    // key is explicitly trusted, and pinned to the published JWKS it is refused. Once a checkpoint is inside,
    // the broker's checkpoint signature gives it away even unpinned, at that checkpoint's seq.
    const attacker = generateKeyPairSync('ed25519').privateKey;
    const forge = async (kept: ExportedEvent[]) => {
      const { jws: _jws, kid: _kid, alg: _alg, publicJwk: _publicJwk, ...body } = manifest;
      const last = kept.at(-1)!;
      const forgedBody = {
        ...body,
        count: kept.length,
        lastSeq: last.seq,
        lastHash: last.hash,
        chainHead: { seq: last.seq, hash: last.hash },
        eventsDigest: eventsDigestOf(kept),
      };
      const forged = { ...forgedBody, ...(await manifestSignerFromKey(manifest.kid, attacker)(forgedBody)) };
      return ndjsonText(kept, forged);
    };
    const firstCheckpoint = events.findIndex((event) => event.action === 'audit.checkpoint');
    const beforeCheckpoint = await forge(events.slice(0, firstCheckpoint));
    expect(await verifyExport(beforeCheckpoint)).toMatchObject({ ok: false, unpinned: true, seq: null });
    expect(await verifyExport(beforeCheckpoint, { trustEmbeddedKey: true })).toMatchObject({
      ok: true,
      keyPinned: false,
    });
    expect(failedAt(await verifyExport(beforeCheckpoint, { jwks }))).toEqual({
      seq: null,
      reason: `the manifest signature does not verify with pinned key ${JSON.stringify(manifest.kid)}`,
    });
    expect(failedAt(await verifyExport(await forge(events.slice(0, firstCheckpoint + 1))))).toEqual({
      seq: events[firstCheckpoint].seq,
      reason: `the checkpoint signature does not verify with key ${JSON.stringify(manifest.kid)}`,
    });
  });

  // Last: it breaks the chain of this stack for good.
  it('rejects UPDATE and DELETE on audit_events; an edit behind the trigger is named by the next export', async () => {
    await expect(stack.db.query(`UPDATE audit_events SET action = 'x' WHERE seq = 1`)).rejects.toThrow(
      /append-only/,
    );
    await expect(stack.db.query('DELETE FROM audit_events WHERE seq = 1')).rejects.toThrow(/append-only/);
    const { rows } = await stack.db.query(
      `SELECT seq FROM audit_events WHERE action = 'approval.recorded' AND request_id = $1`,
      [requestIds.denied],
    );
    const seq = Number(rows[0].seq);
    const client = await stack.db.connect();
    try {
      await client.query('BEGIN');
      await client.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete');
      await client.query(
        `UPDATE audit_events SET data = jsonb_set(data, '{comment}', '"approved after all"') WHERE seq = $1`,
        [seq],
      );
      await client.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const { text } = await exportAs(stack, auditor, { format: 'json', filters: {} });
    expect(failedAt(await verifyExport(text, { jwks }))).toEqual({
      seq,
      reason: 'hash does not match the event content',
    });
    const bundle = await auditor.get(`/api/audit/requests/${requestIds.denied}/bundle`);
    expect(failedAt(await verifyBundle(bundle.body, { jwks }))).toEqual({
      seq,
      reason: 'hash does not match the event content',
    });
  });
});
