import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { encodeCBOR, type CBORType } from '@levischuck/tiny-cbor';
import {
  auditKey,
  buildScenario,
  exportedText,
  memoryAuditSource,
  ORIGIN,
  requestSubjectOf,
  RP_ID,
  stepUpEvidence,
  SyntheticChain,
  type Scenario,
  type SyntheticInput,
} from '../../test/support/audit-chain.js';
import { newNonce, stepUpChallenge, subjectDigest } from '../webauthn/step-up-binding.js';
import { canonicalJson } from '../domain/canonical-json.js';
import { streamAuditExport, type AuditExportFilters } from './export.js';
import { manifestSignerFromKey, type ExportedEvent, type ExportFormat } from './manifest.js';
import { verifyBundle, verifyExport, verifyExportFile } from './verify.js';

const key = auditKey();
let scenario: Scenario;
let workDir: string;

function exportText(
  events: readonly ExportedEvent[],
  format: ExportFormat,
  options: { filters?: AuditExportFilters; origins?: string[]; signManifest?: typeof key.signManifest } = {},
): Promise<string> {
  return exportedText(events, format, options.signManifest ?? key.signManifest, options);
}

/** NDJSON lines without the trailing empty one; index i holds seq i+1 in an unfiltered export. */
function linesOf(text: string): string[] {
  return text.split('\n').slice(0, -1);
}

/** Changes exactly one character of `line`, `offset` characters after the first occurrence of `marker`. */
function changeOneByte(line: string, marker: string, offset = 0): string {
  const at = line.indexOf(marker);
  if (at < 0) throw new Error(`${marker} not in line`);
  const index = at + marker.length + offset;
  const replacement = line[index] === 'A' ? 'B' : 'A';
  return line.slice(0, index) + replacement + line.slice(index + 1);
}

function evidenceOf(event: SyntheticInput): Record<string, string> {
  return event.data?.evidence as Record<string, string>;
}

/** A scenario whose event at `seq` was rewritten before hashing, exported and signed with the real key. */
async function rechained(
  seq: number,
  rewrite: (input: SyntheticInput, people: Scenario) => SyntheticInput,
): Promise<string> {
  const tampered = buildScenario((input, index, people) =>
    index === seq - 1 ? rewrite(input, people) : input,
  );
  return exportText(tampered.chain.events, 'ndjson');
}

beforeAll(async () => {
  scenario = buildScenario();
  workDir = await mkdtemp(path.join(tmpdir(), 'audit-verify-'));
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('verifyExport: an intact export', () => {
  it.each(['ndjson', 'csv', 'json'] as const)(
    'verifies %s: chain, every assertion, the pinned signature',
    async (format) => {
      const text = await exportText(scenario.chain.events, format);
      const result = await verifyExport(text, { jwks: key.jwks });
      expect(result).toMatchObject({
        ok: true,
        format,
        counts: { events: 9, approvals: 3, assertions: 4, requests: 2 },
        keyPinned: true,
      });
    },
  );

  it.each(['ndjson', 'csv', 'json'] as const)('verifies a %s file streamed from disk', async (format) => {
    const file = path.join(workDir, `export.${format}`);
    await writeFile(file, await exportText(scenario.chain.events, format));
    expect(await verifyExportFile(file, { jwks: key.jwks })).toMatchObject({
      ok: true,
      counts: { events: 9 },
    });
  });

  it.each(['ndjson', 'csv'] as const)(
    'streams a %s file larger than its head and tail reads',
    async (format) => {
      const chain = new SyntheticChain();
      for (let index = 0; index < 2500; index++) {
        chain.append({
          actorId: 'system',
          action: 'grant.revoked',
          subjectType: 'grant',
          subjectId: `grant-${index}`,
          data: { note: `line one, "quoted"\r\nline two ${'x'.repeat(400)}`, index },
        });
      }
      const text = await exportText(chain.events, format);
      expect(text.length).toBeGreaterThan(1 << 20);
      const file = path.join(workDir, `large.${format}`);
      await writeFile(file, text);
      expect(await verifyExportFile(file, { jwks: key.jwks })).toMatchObject({
        ok: true,
        counts: { events: 2500 },
      });
      await writeFile(
        file,
        text.replace('"index":1234,', '"index":1235,').replace('""index"":1234,', '""index"":1235,'),
      );
      expect(await verifyExportFile(file, { jwks: key.jwks })).toEqual({
        ok: false,
        seq: 1235,
        reason: 'hash does not match the event content',
      });
    },
  );

  it('streams an NDJSON file whose first event is longer than the head read for detection', async () => {
    const chain = new SyntheticChain();
    chain.append({
      actorId: 'system',
      action: 'policy.loaded',
      subjectType: 'policy',
      subjectId: 'policy',
      data: { content: 'y'.repeat(100_000) },
    });
    const file = path.join(workDir, 'long-first-line.ndjson');
    await writeFile(file, await exportText(chain.events, 'ndjson'));
    expect(await verifyExportFile(file, { jwks: key.jwks })).toMatchObject({ ok: true, format: 'ndjson' });
  });

  it('accepts the export as an array of lines', async () => {
    const text = await exportText(scenario.chain.events, 'ndjson');
    expect(await verifyExport(linesOf(text), { jwks: key.jwks })).toMatchObject({ ok: true });
  });

  it('without jwks, checks the embedded key: unpinned, or a success flagged as not pinned when trusted', async () => {
    const text = await exportText(scenario.chain.events, 'ndjson');
    expect(await verifyExport(text)).toMatchObject({ ok: false, unpinned: true });
    expect(await verifyExport(text, { trustEmbeddedKey: true })).toMatchObject({
      ok: true,
      keyPinned: false,
    });
  });

  it('verifies filtered exports, whose seqs have gaps', async () => {
    const filters = [
      { requestId: scenario.approved.id },
      { actorId: scenario.alice.userId },
      { action: 'approval.recorded' },
      { entitlementId: 'prod-db-write' },
    ];
    const entitlementOf = (requestId: string) =>
      requestId === scenario.approved.id
        ? 'prod-db-write'
        : requestId === scenario.denied.id
          ? 'billing-read'
          : undefined;
    for (const filter of filters) {
      let text = '';
      const out = new Writable({
        write(chunk, _encoding, callback) {
          text += String(chunk);
          callback();
        },
      });
      await streamAuditExport({
        source: memoryAuditSource(scenario.chain.events, { entitlementOf }).source,
        format: 'ndjson',
        out,
        signManifest: key.signManifest,
        exporter: 'auditor-1',
        rpId: RP_ID,
        origins: [ORIGIN],
        filters: filter,
      });
      const result = await verifyExport(text, { jwks: key.jwks });
      expect(result).toMatchObject({ ok: true });
      if (result.ok) expect(result.counts.events).toBeLessThan(9);
    }
  });

  it.each(['', '\n', '\n\n \n', 'hello', '{"a":1}', '{"type":"manifest"}\n', 'seq,at\r\n', '[1,2]'])(
    'refuses %j as not a (complete) export',
    async (text) => {
      const result = await verifyExport(text, { jwks: key.jwks });
      expect(result).toMatchObject({ ok: false, seq: null });
    },
  );

  it('verifies an empty export', async () => {
    const text = await exportText([], 'csv');
    expect(await verifyExport(text, { jwks: key.jwks })).toMatchObject({ ok: true, counts: { events: 0 } });
  });
});

/**
 * What a forger who can rewrite the file does: drop the event at `seq`, rebuild the chain after it and sign a
 * fresh manifest with their own key, which the manifest then embeds as publicJwk.
 */
async function forgedWithout(seq: number, format: ExportFormat = 'ndjson'): Promise<string> {
  const chain = new SyntheticChain();
  for (const event of scenario.chain.events) {
    if (event.seq === seq) continue;
    const { seq: _seq, hash: _hash, prevHash: _prevHash, ...input } = event;
    chain.append(input);
  }
  const forger = generateKeyPairSync('ed25519').privateKey;
  return exportText(chain.events, format, { signManifest: manifestSignerFromKey('mallory', forger) });
}

describe('verifyExport: a manifest checked only against the key it embeds is not a success', () => {
  it.each(['ndjson', 'csv', 'json'] as const)(
    'refuses a %s export rebuilt and re-signed by a forger unless trustEmbeddedKey is set; --jwks names the key',
    async (format) => {
      // Alice's deny of the other request (seq 7) is gone; everything else is consistent.
      const forged = await forgedWithout(7, format);
      expect(await verifyExport(forged)).toMatchObject({
        ok: false,
        unpinned: true,
        seq: null,
        reason: expect.stringMatching(
          /^the manifest is signed by the key it embeds \(kid "mallory"\), which was not pinned/,
        ),
        counts: { events: 8 },
      });
      expect(await verifyExport(forged, { trustEmbeddedKey: true })).toMatchObject({
        ok: true,
        keyPinned: false,
        counts: { events: 8 },
      });
      expect(await verifyExport(forged, { jwks: key.jwks })).toEqual({
        ok: false,
        seq: null,
        reason: 'the manifest is signed by key "mallory", which is not among the pinned keys',
      });
    },
  );

  it('treats a genuine export the same way: without jwks it is not a success', async () => {
    const text = await exportText(scenario.chain.events, 'ndjson');
    expect(await verifyExport(text)).toMatchObject({ ok: false, unpinned: true, counts: { events: 9 } });
    const file = path.join(workDir, 'unpinned.ndjson');
    await writeFile(file, text);
    expect(await verifyExportFile(file)).toMatchObject({ ok: false, unpinned: true });
  });
});

describe('verifyExport: every event and manifest is the canonical JSON (JCS) that its hash covers', () => {
  let lines: string[];
  beforeAll(async () => {
    lines = linesOf(await exportText(scenario.chain.events, 'ndjson'));
  });

  function withLine(index: number, line: string): string[] {
    const copy = [...lines];
    copy[index] = line;
    return copy;
  }

  it('the export writes every NDJSON line in canonical form', () => {
    for (const line of lines) expect(line).toBe(canonicalJson(JSON.parse(line)));
  });

  it('refuses a line with a duplicate actorId (JSON.parse keeps the last, a grep reader sees the first)', async () => {
    const forged = lines[2].replace('"actorId":', `"actorId":"${scenario.bob.userId}","actorId":`);
    // What JSON.parse reads, and what the hash covers, is still alice's approval.
    expect(JSON.parse(forged)).toEqual(JSON.parse(lines[2]));
    expect(await verifyExport(withLine(2, forged), { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 3,
      reason: 'line 3 holds a duplicate key',
    });
  });

  it('refuses a line with a duplicate key nested inside data', async () => {
    const forged = lines[2].replace('"decision":"approve"', '"decision":"deny","decision":"approve"');
    expect(JSON.parse(forged)).toEqual(JSON.parse(lines[2]));
    expect(await verifyExport(withLine(2, forged), { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 3,
      reason: 'line 3 holds a duplicate key',
    });
    const deeper = lines[2].replace('"userId":', '"userId":"someone-else","userId":');
    expect(await verifyExport(withLine(2, deeper), { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 3,
      reason: 'line 3 holds a duplicate key',
    });
  });

  it.each([
    [
      'reordered keys',
      (line: string) => {
        const { hash, ...rest } = JSON.parse(line) as ExportedEvent;
        return JSON.stringify({ hash, ...rest });
      },
    ],
    ['extra whitespace', (line: string) => line.replace('"action":', '"action": ')],
    ['a trailing space', (line: string) => `${line} `],
    [
      'an escape JCS does not use',
      (line: string) => line.replace('"action":"approval', '"action":"\\u0061pproval'),
    ],
  ])('refuses a line with %s', async (_what, rewrite) => {
    const forged = rewrite(lines[2]);
    expect(JSON.parse(forged)).toEqual(JSON.parse(lines[2]));
    expect(await verifyExport(withLine(2, forged), { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 3,
      reason:
        'line 3 is not in canonical form (JCS): keys out of order, whitespace, or escapes and numbers written another way',
    });
  });

  it('refuses a manifest line with a duplicate key or not in canonical form', async () => {
    const last = lines.length - 1;
    const duplicate = lines[last].replace('"exporter":', '"exporter":"someone-else","exporter":');
    expect(await verifyExport(withLine(last, duplicate), { jwks: key.jwks })).toEqual({
      ok: false,
      seq: null,
      reason: 'the manifest line holds a duplicate key',
    });
    const { jws, ...unsigned } = JSON.parse(lines[last]) as { jws: object };
    const reordered = JSON.stringify({ jws, ...unsigned });
    expect(await verifyExport(withLine(last, reordered), { jwks: key.jwks })).toMatchObject({
      ok: false,
      seq: null,
      reason: expect.stringMatching(/^the manifest line is not in canonical form/),
    });
  });

  it('refuses the same in a file streamed from disk', async () => {
    const file = path.join(workDir, 'duplicate.ndjson');
    const forged = lines[2].replace('"actorId":', `"actorId":"${scenario.bob.userId}","actorId":`);
    await writeFile(file, `${withLine(2, forged).join('\n')}\n`);
    expect(await verifyExportFile(file, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 3,
      reason: 'line 3 holds a duplicate key',
    });
  });

  it('JSON export: refuses a duplicate key in an event, and a file not laid out as the broker writes it', async () => {
    const text = await exportText(scenario.chain.events, 'json');
    const duplicate = text.replace(
      `"actorId":"${scenario.alice.userId}"`,
      `"actorId":"${scenario.bob.userId}","actorId":"${scenario.alice.userId}"`,
    );
    expect(JSON.parse(duplicate)).toEqual(JSON.parse(text));
    expect(await verifyExport(duplicate, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 3,
      reason: 'events[2] (line 4) holds a duplicate key',
    });
    const twice = text.replace('{"events":[', '{"events":[],"events":[');
    expect(await verifyExport(twice, { jwks: key.jwks })).toMatchObject({ ok: false, seq: null });
    const reformatted = JSON.stringify(JSON.parse(text), null, 2);
    expect(await verifyExport(reformatted, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: null,
      reason:
        'not laid out as the broker writes a JSON export: {"events":[ on line 1, one event per line, then ],"manifest":{…}}',
    });
  });

  it('CSV export: refuses a data field with a duplicate key or not in canonical form', async () => {
    const text = await exportText(scenario.chain.events, 'csv');
    const duplicate = text.replace(
      '""decision"":""approve""',
      '""decision"":""deny"",""decision"":""approve""',
    );
    expect(await verifyExport(duplicate, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 3,
      reason: 'record 4: data holds a duplicate key',
    });
    const spaced = text.replace('""decision"":""approve""', '""decision"": ""approve""');
    expect(await verifyExport(spaced, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 3,
      reason:
        'record 4: data is not in canonical form (JCS): keys out of order, whitespace, or escapes and numbers written another way',
    });
  });

  it('a bundle file: refuses a duplicate key at any depth', async () => {
    const { signRequestBundle } = await import('./bundle.js');
    const bundle = await signRequestBundle(
      {
        requestId: scenario.denied.id,
        request: { id: scenario.denied.id } as never,
        policyVersion: null,
        grants: [],
        events: scenario.chain.events.filter((event) => event.requestId === scenario.denied.id),
      },
      { ...scenario.chain.head, exportedAt: '2026-03-02T10:00:00.000Z' },
      { signManifest: key.signManifest, exporter: 'auditor-1', rpId: RP_ID, origins: [ORIGIN] },
    );
    const text = JSON.stringify(bundle, null, 2);
    const duplicate = text.replace('"decision": "deny"', '"decision": "approve", "decision": "deny"');
    expect(JSON.parse(duplicate)).toEqual(JSON.parse(text));
    expect(await verifyBundle(duplicate, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: null,
      reason: 'the bundle holds a duplicate key',
    });
    expect(await verifyExport(duplicate, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: null,
      reason: 'the bundle holds a duplicate key',
    });
  });
});

describe('verifyExport: tampering names the first failing seq', () => {
  let text: string;
  beforeAll(async () => {
    text = await exportText(scenario.chain.events, 'ndjson');
  });

  function edit(seq: number, change: (line: string) => string): string {
    const lines = linesOf(text);
    lines[seq - 1] = change(lines[seq - 1]);
    return `${lines.join('\n')}\n`;
  }

  it('one byte changed in an event’s data', async () => {
    const forged = edit(2, (line) => changeOneByte(line, '"justification":"CHG-'));
    expect(await verifyExport(forged, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 2,
      reason: 'hash does not match the event content',
    });
  });

  it('one byte changed in an evidence signature', async () => {
    const forged = edit(3, (line) => changeOneByte(line, '"signature":"', 10));
    expect(await verifyExport(forged, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 3,
      reason: 'hash does not match the event content',
    });
  });

  it('one byte changed in a clientDataJSON', async () => {
    const forged = edit(5, (line) => changeOneByte(line, '"clientDataJSON":"', 20));
    expect(await verifyExport(forged, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 5,
      reason: 'hash does not match the event content',
    });
  });

  it('a deleted line', async () => {
    const lines = linesOf(text);
    lines.splice(4, 1);
    expect(await verifyExport(lines, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 6,
      reason: 'expected seq 5, found 6 (an unfiltered export holds every event)',
    });
  });

  it('two lines swapped', async () => {
    const lines = linesOf(text);
    [lines[3], lines[4]] = [lines[4], lines[3]];
    expect(await verifyExport(lines, { jwks: key.jwks })).toMatchObject({ ok: false, seq: 5 });
  });

  it('a rewritten event whose own hash was recomputed breaks the next link', async () => {
    const lines = linesOf(text);
    const event = JSON.parse(lines[5]) as ExportedEvent;
    const { hash: _hash, ...body } = { ...event, actorId: 'mallory' };
    const { chainHash } = await import('./chain.js');
    lines[5] = canonicalJson({
      ...body,
      hash: chainHash(Buffer.from(body.prevHash, 'hex'), body).toString('hex'),
    });
    expect(await verifyExport(lines, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 7,
      reason: 'prevHash does not match the previous event',
    });
  });

  it('a truncated file (no manifest)', async () => {
    const lines = linesOf(text).slice(0, -1);
    expect(await verifyExport(lines, { jwks: key.jwks })).toMatchObject({
      ok: false,
      seq: null,
      reason: /truncated/,
    });
    // Cut further, between events: the message names the last seq still there.
    const cut = linesOf(text).slice(0, 4);
    expect(await verifyExport(`${cut.join('\n')}\n`, { jwks: key.jwks })).toMatchObject({
      ok: false,
      reason: 'no manifest after seq 4: the export is truncated there',
    });
  });

  it('a file cut in the middle of an event line', async () => {
    const lines = linesOf(text).slice(0, 6);
    lines[5] = lines[5].slice(0, Math.floor(lines[5].length / 2));
    expect(await verifyExport(`${lines.join('\n')}\n`, { jwks: key.jwks })).toMatchObject({
      ok: false,
      reason: /truncated/,
    });
  });

  it('an edited event with every later event re-hashed is caught by the signed manifest, at the last seq', async () => {
    const lines = linesOf(text);
    const { chainHash } = await import('./chain.js');
    let previous: Buffer = Buffer.from((JSON.parse(lines[3]) as ExportedEvent).prevHash, 'hex');
    for (let index = 3; index < lines.length - 1; index++) {
      const event = JSON.parse(lines[index]) as ExportedEvent;
      const { hash: _hash, ...body } = index === 3 ? { ...event, actorId: 'mallory' } : event;
      const rewritten = { ...body, prevHash: previous.toString('hex') };
      previous = chainHash(previous, rewritten);
      lines[index] = canonicalJson({ ...rewritten, hash: previous.toString('hex') });
    }
    // The chain holds again; only the signed manifest's lastHash still sees the rewrite, at the last seq: the
    // edited seq 4 itself cannot be told from the re-hashed ones without an earlier signed point.
    expect(await verifyExport(lines, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 9,
      reason: 'the manifest lastHash is not the hash of the last event',
    });
  });

  it('a forged manifest: changed count', async () => {
    const lines = linesOf(text);
    lines[lines.length - 1] = lines[lines.length - 1].replace('"count":9', '"count":8');
    expect(await verifyExport(lines, { jwks: key.jwks })).toMatchObject({
      ok: false,
      seq: null,
      reason: /counts 8/,
    });
  });

  it('a forged manifest: the tail cut and the manifest totals rewritten to match', async () => {
    const lines = linesOf(text);
    const manifest = JSON.parse(lines.pop() as string);
    lines.pop();
    const kept = lines.map((line) => JSON.parse(line) as ExportedEvent);
    const digest = createHash('sha256');
    for (const event of kept) digest.update(Buffer.from(event.hash, 'hex'));
    const last = kept.at(-1) as ExportedEvent;
    const forged = {
      ...manifest,
      count: kept.length,
      lastSeq: last.seq,
      lastHash: last.hash,
      eventsDigest: digest.digest('hex'),
      chainHead: { seq: last.seq, hash: last.hash },
    };
    expect(await verifyExport([...lines, JSON.stringify(forged)], { jwks: key.jwks })).toMatchObject({
      ok: false,
      seq: null,
      reason: /signature does not verify with pinned key/,
    });
  });

  it('a forged manifest: re-signed with another key under the real kid, while --jwks pins the real one', async () => {
    const impostor = generateKeyPairSync('ed25519').privateKey;
    const forged = await exportText(scenario.chain.events, 'ndjson', {
      signManifest: manifestSignerFromKey(key.kid, impostor),
    });
    expect(await verifyExport(forged, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: null,
      reason: `the manifest signature does not verify with pinned key ${JSON.stringify(key.kid)}`,
    });
    // Without pinning, the impostor's embedded key is all there is: not a success unless trusted, then flagged.
    expect(await verifyExport(forged)).toMatchObject({ ok: false, unpinned: true });
    expect(await verifyExport(forged, { trustEmbeddedKey: true })).toMatchObject({
      ok: true,
      keyPinned: false,
    });
  });

  it('a forged manifest: re-signed with another key under its own kid', async () => {
    const impostor = generateKeyPairSync('ed25519').privateKey;
    const forged = await exportText(scenario.chain.events, 'ndjson', {
      signManifest: manifestSignerFromKey('mallory', impostor),
    });
    expect(await verifyExport(forged, { jwks: key.jwks })).toMatchObject({
      ok: false,
      seq: null,
      reason: /"mallory", which is not among the pinned keys/,
    });
  });

  it('a filtered export: a deleted line is caught by the manifest', async () => {
    const filtered = linesOf(
      await exportText(scenario.chain.events, 'ndjson', { filters: { requestId: scenario.approved.id } }),
    );
    filtered.splice(1, 1);
    expect(await verifyExport(filtered, { jwks: key.jwks })).toMatchObject({
      ok: false,
      seq: null,
      reason: /counts 6/,
    });
  });

  it('a filtered export: a line replaced by one from outside the filter', async () => {
    const filtered = linesOf(
      await exportText(scenario.chain.events, 'ndjson', { filters: { requestId: scenario.approved.id } }),
    );
    // seq 4 (the other request) in place of seq 3: order still increases, the digest does not match.
    filtered[1] = linesOf(text)[3];
    expect(await verifyExport(filtered, { jwks: key.jwks })).toMatchObject({
      ok: false,
      seq: 4,
      reason: "the event does not match the export's filter requestId",
    });
  });

  it('a filtered export: two lines swapped', async () => {
    const filtered = linesOf(
      await exportText(scenario.chain.events, 'ndjson', { filters: { actorId: scenario.alice.userId } }),
    );
    [filtered[0], filtered[1]] = [filtered[1], filtered[0]];
    expect(await verifyExport(filtered, { jwks: key.jwks })).toMatchObject({
      ok: false,
      seq: 3,
      reason: 'seq 3 comes after seq 7: events must be in increasing seq order',
    });
  });

  it('CSV: one byte changed in a data field, and a broken quote', async () => {
    const csv = await exportText(scenario.chain.events, 'csv');
    const forged = changeOneByte(csv, '""justification"":""CHG-');
    expect(await verifyExport(forged, { jwks: key.jwks })).toMatchObject({ ok: false, seq: 2 });
    const broken = csv.replace('"{""approvalsRequired""', '"{"approvalsRequired""');
    expect(await verifyExport(broken, { jwks: key.jwks })).toMatchObject({
      ok: false,
      reason: /not valid CSV/,
    });
  });

  it('JSON: two events swapped', async () => {
    // Line 1 is {"events":[, so events[6] and events[7] are lines 8 and 9 (index 7 and 8).
    const lines = (await exportText(scenario.chain.events, 'json')).split('\n');
    [lines[7], lines[8]] = [lines[8], lines[7]];
    expect(await verifyExport(lines.join('\n'), { jwks: key.jwks })).toMatchObject({ ok: false, seq: 8 });
  });
});

describe('verifyExport: evidence in a chain that hashes correctly (a broker that recorded a lie)', () => {
  it('an evidence signature that does not verify', async () => {
    const forged = await rechained(3, (input) => {
      const evidence = evidenceOf(input);
      return {
        ...input,
        data: {
          ...input.data,
          evidence: { ...evidence, signature: changeOneByte(evidence.signature, '', 12) },
        },
      };
    });
    expect(await verifyExport(forged, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 3,
      reason: 'assertion signature does not verify with the ES256 public key',
    });
  });

  it('a clientDataJSON with one byte changed', async () => {
    const forged = await rechained(5, (input) => {
      const evidence = evidenceOf(input);
      const clientData = Buffer.from(evidence.clientDataJSON, 'base64url').toString();
      const changed = changeOneByte(clientData, '"challenge":"', 5);
      return {
        ...input,
        data: {
          ...input.data,
          evidence: { ...evidence, clientDataJSON: Buffer.from(changed).toString('base64url') },
        },
      };
    });
    expect(await verifyExport(forged, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 5,
      reason: 'clientDataJSON.challenge is not the step-up challenge recomputed from the evidence',
    });
  });

  it('a genuinely signed approval for a subject other than the one committed (the approver saw other terms)', async () => {
    const forged = await (async () => {
      const base = buildScenario();
      const chain = new SyntheticChain();
      for (const event of base.chain.events.slice(0, 2)) {
        const { seq: _seq, at: _at, prevHash: _prev, hash: _hash, ...input } = event;
        chain.append(input);
      }
      const otherTerms = { ...base.approved, durationSeconds: 28_800 };
      chain.append({
        actorId: base.alice.userId,
        action: 'approval.recorded',
        subjectType: 'request',
        subjectId: base.approved.id,
        requestId: base.approved.id,
        data: {
          decision: 'approve',
          evidence: stepUpEvidence(base.alice, {
            action: 'approve',
            subjectId: base.approved.id,
            subjectDigest: subjectDigest(otherTerms),
          }),
        },
      });
      return exportText(chain.events, 'ndjson');
    })();
    expect(await verifyExport(forged, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 3,
      reason: 'evidence.subjectDigest is not the digest of the request subject committed at seq 2',
    });
  });

  it.each([
    [{ userVerified: false }, 'authenticatorData does not have user verification (UV)'],
    [{ userPresent: false }, 'authenticatorData does not have user presence (UP)'],
    [{ rpId: 'evil.example' }, 'authenticatorData is not for rpId "localhost"'],
    [
      { origin: 'https://evil.example' },
      `clientDataJSON.origin "https://evil.example" is not one of the manifest's origins`,
    ],
    [{ type: 'webauthn.create' }, 'clientDataJSON.type is "webauthn.create", not "webauthn.get"'],
  ])('an assertion made with %j', async (overrides, reason) => {
    const forged = await rechained(3, (input, people) => {
      const binding = {
        action: 'approve' as const,
        subjectId: people.approved.id,
        subjectDigest: subjectDigest(people.approved),
      };
      return {
        ...input,
        data: { ...input.data, evidence: stepUpEvidence(people.alice, binding, overrides) },
      };
    });
    expect(await verifyExport(forged, { jwks: key.jwks })).toEqual({ ok: false, seq: 3, reason });
  });

  it('an export whose manifest does not list the origin the approvals came from', async () => {
    const text = await exportText(scenario.chain.events, 'ndjson', { origins: ['https://jit.example.com'] });
    expect(await verifyExport(text, { jwks: key.jwks })).toMatchObject({
      ok: false,
      seq: 3,
      reason: /origin/,
    });
  });

  it('evidence taken from another request, by another user, or missing', async () => {
    // Bob's approval of request one replaced by Alice's genuine deny of request two.
    const moved = await rechained(5, (input, people) => {
      const binding = {
        action: 'deny' as const,
        subjectId: people.denied.id,
        subjectDigest: subjectDigest(people.denied),
      };
      return {
        ...input,
        actorId: people.alice.userId,
        data: { ...input.data, decision: 'deny', evidence: stepUpEvidence(people.alice, binding) },
      };
    });
    expect(await verifyExport(moved, { jwks: key.jwks })).toMatchObject({
      seq: 5,
      reason: 'evidence.subjectId is not the request this event records',
    });
    const otherUser = await rechained(5, (input, people) => ({ ...input, actorId: people.alice.userId }));
    expect(await verifyExport(otherUser, { jwks: key.jwks })).toMatchObject({
      seq: 5,
      reason: "evidence.userId is not the event's actorId",
    });
    const missing = await rechained(3, (input) => ({ ...input, data: { decision: 'approve' } }));
    expect(await verifyExport(missing, { jwks: key.jwks })).toMatchObject({
      seq: 3,
      reason: 'approval.recorded carries no step-up evidence',
    });
  });
});

describe('verifyExport: a workload activation (issue 21)', () => {
  const workload = { id: 'deploy-bot', issuer: 'https://ci.example', subject: 'repo:o/a', jti: 'j-1' };
  /** Seq 8 is the request's activation; without a step-up it must name the workload that filed it (seq 2). */
  const tokenActivated = (input: SyntheticInput, extra: Record<string, unknown>): SyntheticInput => {
    const { evidence: _evidence, ...rest } = input.data ?? {};
    return { ...input, data: { ...rest, ...extra } };
  };

  it('verifies one filed and activated by the same workload', async () => {
    const text = exportText(
      buildScenario((input, index) => {
        if (index === 1) return { ...input, data: { ...input.data, workload } };
        return index === 7 ? tokenActivated(input, { workload }) : input;
      }).chain.events,
      'ndjson',
    );
    expect(await verifyExport(await text, { jwks: key.jwks })).toMatchObject({ ok: true });
  });

  it('refuses an activation with neither a step-up nor a workload, or by a workload that did not file it', async () => {
    const bare = await rechained(8, (input) => tokenActivated(input, {}));
    expect(await verifyExport(bare, { jwks: key.jwks })).toMatchObject({
      seq: 8,
      reason: 'request.activated carries neither step-up evidence nor the workload that activated it',
    });
    const foreign = await rechained(8, (input) => tokenActivated(input, { workload }));
    expect(await verifyExport(foreign, { jwks: key.jwks })).toMatchObject({
      seq: 8,
      reason: 'request.activated names workload "deploy-bot", which did not file the request (seq 2)',
    });
  });
});

describe('verifyExport: COSE keys other than ES256', () => {
  function cose(alg: 'EdDSA' | 'RS256', publicKey: KeyObject): Buffer {
    const jwk = publicKey.export({ format: 'jwk' });
    const bytes = (value: unknown) => new Uint8Array(Buffer.from(String(value), 'base64url'));
    const map =
      alg === 'EdDSA'
        ? new Map<number, CBORType>([
            [1, 1],
            [3, -8],
            [-1, 6],
            [-2, bytes(jwk.x)],
          ])
        : new Map<number, CBORType>([
            [1, 3],
            [3, -257],
            [-1, bytes(jwk.n)],
            [-2, bytes(jwk.e)],
          ]);
    return Buffer.from(encodeCBOR(map));
  }

  it.each(['EdDSA', 'RS256'] as const)('verifies an %s assertion made by hand', async (alg) => {
    const { privateKey, publicKey } =
      alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('rsa', { modulusLength: 2048 });
    const userId = 'dave-0001';
    const subject = requestSubjectOf('carol-0001');
    const nonce = newNonce();
    const digest = subjectDigest(subject);
    const challenge = stepUpChallenge({
      nonce,
      userId,
      action: 'approve',
      subjectId: subject.id,
      subjectDigest: digest,
    });
    const authenticatorData = Buffer.concat([
      createHash('sha256').update(RP_ID).digest(),
      Buffer.from([0x05, 0, 0, 0, 1]),
    ]);
    const clientDataJSON = Buffer.from(
      JSON.stringify({ type: 'webauthn.get', challenge: challenge.toString('base64url'), origin: ORIGIN }),
    );
    const signed = Buffer.concat([authenticatorData, createHash('sha256').update(clientDataJSON).digest()]);
    const signature = alg === 'EdDSA' ? sign(null, signed, privateKey) : sign('sha256', signed, privateKey);
    const chain = new SyntheticChain();
    chain.append({
      actorId: 'carol-0001',
      action: 'request.created',
      subjectType: 'request',
      subjectId: subject.id,
      requestId: subject.id,
      data: { subject },
    });
    chain.append({
      actorId: userId,
      action: 'approval.recorded',
      subjectType: 'request',
      subjectId: subject.id,
      requestId: subject.id,
      data: {
        decision: 'approve',
        evidence: {
          userId,
          action: 'approve',
          subjectId: subject.id,
          subjectDigest: digest,
          nonce,
          credentialId: 'Y3JlZC0x',
          authenticatorData: authenticatorData.toString('base64url'),
          clientDataJSON: clientDataJSON.toString('base64url'),
          signature: signature.toString('base64url'),
          publicKey: cose(alg, publicKey).toString('base64url'),
        },
      },
    });
    const text = await exportText(chain.events, 'ndjson');
    expect(await verifyExport(text, { jwks: key.jwks })).toMatchObject({
      ok: true,
      counts: { events: 2, approvals: 1, assertions: 1, requests: 1 },
    });
  });
});
