import { createHash, createPublicKey, verify } from 'node:crypto';
import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { exportJWK, generateKeyPair } from 'jose';
import {
  auditKey,
  buildScenario,
  memoryAuditSource,
  ORIGIN,
  RP_ID,
  type Scenario,
} from '../../test/support/audit-chain.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { canonicalJson } from '../domain/canonical-json.js';
import {
  normaliseAuditFilters,
  signAuditManifest,
  streamAuditExport,
  type AuditExportOptions,
  type AuditSource,
} from './export.js';
import {
  EXPORT_COLUMNS,
  manifestSignatureHolds,
  manifestSigningInput,
  type ExportFormat,
  type ExportManifest,
} from './manifest.js';

/** A sink that keeps what it is given; `delayed` acknowledges each write a tick later, so its buffer fills. */
class Collector extends Writable {
  text = '';
  maxBuffered = 0;
  refusals = 0;

  constructor(
    private readonly delayed = false,
    highWaterMark = 16 * 1024,
  ) {
    super({ highWaterMark, decodeStrings: false });
  }

  override write(chunk: unknown, ...rest: never[]): boolean {
    const accepted = super.write(chunk, ...rest);
    this.maxBuffered = Math.max(this.maxBuffered, this.writableLength);
    if (!accepted) this.refusals++;
    return accepted;
  }

  override _write(chunk: string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.text += chunk;
    if (this.delayed) setImmediate(callback);
    else callback();
  }
}

let scenario: Scenario;
const key = auditKey();

beforeAll(() => {
  scenario = buildScenario();
  // A username with every character RFC 4180 must quote, as a subject id.
  scenario.chain.append({
    actorId: scenario.alice.userId,
    action: 'invite.created',
    subjectType: 'user',
    subjectId: 'o\'neil, "jr"\r\nsecond line',
    data: { roles: [] },
  });
});

async function exportTo(
  format: ExportFormat,
  overrides: Partial<AuditExportOptions> & { source?: AuditSource } = {},
): Promise<{ text: string; manifest: ExportManifest; out: Collector }> {
  const out = (overrides.out as Collector | undefined) ?? new Collector();
  const manifest = await streamAuditExport({
    source: overrides.source ?? memoryAuditSource(scenario.chain.events).source,
    format,
    out,
    signManifest: key.signManifest,
    exporter: scenario.alice.userId,
    rpId: RP_ID,
    origins: [ORIGIN],
    ...overrides,
  });
  return { text: out.text, manifest, out };
}

/** An RFC 4180 reader written independently of libs/audit/csv.ts, so the export is not checked by its own parser. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  const pattern = /("(?:[^"]|"")*"|[^,"\r\n]*)(,|\r\n|$)/gy;
  let record: string[] = [];
  while (pattern.lastIndex < text.length) {
    const match = pattern.exec(text);
    if (!match) throw new Error(`not RFC 4180 at offset ${pattern.lastIndex}`);
    const [, field, separator] = match;
    record.push(field.startsWith('"') ? field.slice(1, -1).replaceAll('""', '"') : field);
    if (separator !== ',') {
      records.push(record);
      record = [];
    }
  }
  return records;
}

describe('streamAuditExport', () => {
  it('writes NDJSON: one event per line, then the signed manifest line', async () => {
    const { text, manifest } = await exportTo('ndjson');
    const lines = text.split('\n');
    expect(lines.at(-1)).toBe('');
    const events = scenario.chain.events;
    expect(lines.slice(0, -2).map((line) => JSON.parse(line))).toEqual(events);
    expect(JSON.parse(lines.at(-2) as string)).toEqual(manifest);

    const digest = createHash('sha256');
    for (const event of events) digest.update(Buffer.from(event.hash, 'hex'));
    expect(manifest).toMatchObject({
      type: 'manifest',
      version: 1,
      format: 'ndjson',
      count: events.length,
      firstSeq: 1,
      lastSeq: events.length,
      lastHash: events.at(-1)?.hash,
      eventsDigest: digest.digest('hex'),
      filters: {},
      chainHead: { seq: events.length, hash: events.at(-1)?.hash },
      exporter: scenario.alice.userId,
      exportedAt: '2026-03-02T10:00:00.000Z',
      rpId: RP_ID,
      origins: [ORIGIN],
      kid: key.kid,
      alg: 'EdDSA',
      publicJwk: key.jwks[0],
    });
    // A JWS over JCS(manifest without jws), payload detached, checked here with node:crypto alone.
    const { jws, ...unsigned } = manifest;
    expect(manifestSigningInput(manifest).toString()).toBe(canonicalJson(unsigned));
    const signingInput = `${jws!.protected}.${Buffer.from(canonicalJson(unsigned)).toString('base64url')}`;
    const publicKey = createPublicKey({ key: key.jwks[0], format: 'jwk' });
    const signature = Buffer.from(jws!.signature, 'base64url');
    expect(verify(null, Buffer.from(signingInput), publicKey, signature)).toBe(true);
  });

  it('writes JSON as {"events":[…],"manifest":{…}}', async () => {
    const { text, manifest } = await exportTo('json');
    expect(text.startsWith('{"events":[\n{"action":"policy.loaded",')).toBe(true);
    expect(JSON.parse(text)).toEqual({ events: scenario.chain.events, manifest });
  });

  it('writes CSV with RFC 4180 quoting and a final #manifest record', async () => {
    const { text, manifest } = await exportTo('csv');
    const records = parseCsv(text);
    expect(records[0]).toEqual([...EXPORT_COLUMNS]);
    const events = scenario.chain.events;
    expect(records).toHaveLength(events.length + 2);
    for (const [index, event] of events.entries()) {
      expect(records[index + 1]).toEqual([
        String(event.seq),
        event.at,
        event.actorId,
        event.action,
        event.subjectType,
        event.subjectId,
        event.requestId ?? '',
        canonicalJson(event.data),
        event.prevHash,
        event.hash,
      ]);
    }
    // The comma-quote-CRLF subject id is one quoted field with doubled quotes, not a broken record.
    expect(text).toContain(',"o\'neil, ""jr""\r\nsecond line",');
    // Quotes inside data JSON are doubled; the JSON text itself never holds a raw line break.
    expect(text).toContain('""comment"":""ok, \\""looks fine\\"", go""');
    const manifestRecord = records.at(-1) as string[];
    expect(manifestRecord).toHaveLength(EXPORT_COLUMNS.length);
    expect(manifestRecord[0]).toBe('#manifest');
    expect(JSON.parse(manifestRecord[EXPORT_COLUMNS.indexOf('data')])).toEqual(manifest);
    expect(manifestRecord.filter((field) => field === '')).toHaveLength(EXPORT_COLUMNS.length - 2);
    expect(text.endsWith('\r\n')).toBe(true);
  });

  it('reads keyset pages bounded by the chain head read at the start', async () => {
    const events = scenario.chain.events;
    const headSeq = events.length - 2; // two events appended after the export began
    const { source, calls } = memoryAuditSource(events, { headSeq });
    const { text, manifest } = await exportTo('ndjson', { source, pageSize: 3 });
    expect(text.trim().split('\n')).toHaveLength(headSeq + 1);
    expect(manifest).toMatchObject({ count: headSeq, lastSeq: headSeq, chainHead: { seq: headSeq } });
    const pages = calls.slice(1);
    expect(calls[0].sql).toContain('FROM audit_chain_head');
    for (const page of pages) {
      expect(page.sql).toMatch(/WHERE seq > \$1 AND seq <= \$2\s+ORDER BY seq\s+LIMIT \$3$/);
      expect(page.parameters.slice(1)).toEqual([headSeq, 3]);
    }
    // Each page starts after the last seq of the one before; a short page ends the reading.
    expect(pages.map((page) => page.parameters[0])).toEqual([0, 3, 6]);
  });

  it('waits for drain: never reads the next page while the output buffer is full', async () => {
    const { source: inner } = memoryAuditSource(scenario.chain.events);
    const out = new Collector(true, 64);
    const bufferedAtQuery: number[] = [];
    const source: AuditSource = (sql, parameters) => {
      bufferedAtQuery.push(out.writableLength);
      return (inner as (sql: string, parameters: unknown[]) => Promise<unknown>)(sql, parameters);
    };
    const { text } = await exportTo('ndjson', { source, out, pageSize: 1 });
    expect(out.refusals).toBeGreaterThan(0);
    expect(bufferedAtQuery.every((buffered) => buffered < 64)).toBe(true);
    expect(text.trim().split('\n')).toHaveLength(scenario.chain.events.length + 1);
  });

  it('sends the filters as SQL parameters and records them in the manifest', async () => {
    const { source, calls } = memoryAuditSource(scenario.chain.events);
    const { text, manifest } = await exportTo('ndjson', {
      source,
      filters: {
        actorId: scenario.alice.userId,
        from: new Date('2026-03-01T09:00:00Z'),
        to: '2026-03-01T10:00:00Z',
      },
    });
    const events = text
      .trim()
      .split('\n')
      .slice(0, -1)
      .map((line) => JSON.parse(line));
    expect(events.map((event) => event.actorId)).toEqual(events.map(() => scenario.alice.userId));
    expect(events.map((event) => event.action)).toEqual([
      'approval.recorded',
      'approval.recorded',
      'invite.created',
    ]);
    expect(manifest.filters).toEqual({
      from: '2026-03-01T09:00:00.000Z',
      to: '2026-03-01T10:00:00.000Z',
      actorId: scenario.alice.userId,
    });
    expect(calls[1].sql).toContain('at >= $3 AND at < $4 AND actor_id = $5');
  });

  it('refuses bad filters and formats with VALIDATION_FAILED before writing anything', async () => {
    const bad = [
      { from: 'yesterday' },
      { from: '2026-03-02T00:00:00Z', to: '2026-03-01T00:00:00Z' },
      { requestId: 'not-a-uuid' },
      { actorId: '' },
      { user: 'alice' },
    ];
    for (const filters of bad) {
      expect(() => normaliseAuditFilters(filters as never)).toThrow(DomainError);
    }
    const out = new Collector();
    await expect(exportTo('xml' as ExportFormat, { out })).rejects.toMatchObject({
      code: ErrorCode.VALIDATION_FAILED,
    });
    await expect(exportTo('csv', { out, filters: { requestId: 'x' } })).rejects.toMatchObject({
      code: ErrorCode.VALIDATION_FAILED,
    });
    expect(out.text).toBe('');
  });

  it('fails, without a manifest, when the output closes mid-export', async () => {
    const out = new Collector(true, 16);
    const { source: inner } = memoryAuditSource(scenario.chain.events);
    let pages = 0;
    const source: AuditSource = (sql, parameters) => {
      if (sql.includes('audit_events') && ++pages === 2) out.destroy();
      return (inner as (sql: string, parameters: unknown[]) => Promise<unknown>)(sql, parameters);
    };
    await expect(exportTo('ndjson', { source, out, pageSize: 2 })).rejects.toThrow(
      'closed before the export finished',
    );
    expect(out.text).not.toContain('"type":"manifest"');
  });

  it('signAuditManifest signs with the store key (a WebCrypto key, as jose imports it)', async () => {
    const { privateKey, publicKey } = await generateKeyPair('EdDSA', { extractable: true });
    const store = { currentKey: async () => ({ kid: 'audit-1', alg: 'EdDSA', privateKey }) };
    const { manifest } = await exportTo('ndjson', { signManifest: signAuditManifest(store) });
    expect(manifest.kid).toBe('audit-1');
    const jwk = await exportJWK(publicKey);
    expect(manifest.publicJwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', x: jwk.x, kid: 'audit-1' });
    expect(await manifestSignatureHolds(manifest, jwk.x!)).toBe(true);
  });
});
