import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { auditVerify } from './audit-verify.js';
import { auditKey, buildScenario, exportedText } from '../../test/support/audit-chain.js';
import { matchExportToCheckpoint } from '../../libs/audit/export-checkpoint.js';
import type { ExportedEvent } from '../../libs/audit/manifest.js';
import { auditLeafHash, MemoryTree, rootAt } from '../../libs/audit/merkle.js';
import { formatCheckpoint, signNote } from '../../libs/audit/tlog-note.js';
import { verifyExport } from '../../libs/audit/verify.js';

const key = auditKey();
const LOG = 'broker.example/jit-audit';
let dir: string;

function ndjson(events: readonly ExportedEvent[]): Promise<string> {
  return exportedText(events, 'ndjson', key.signManifest);
}

/** The signed checkpoint of the first `size` events, as the broker signs it. */
async function checkpointOf(events: readonly ExportedEvent[], size: number): Promise<string> {
  const tree = new MemoryTree();
  for (const event of events.slice(0, size)) tree.append(auditLeafHash(event));
  const root = await rootAt(tree, size);
  return signNote(formatCheckpoint({ origin: LOG, size, root, extensions: [] }), LOG, key.privateKey);
}

async function saved(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

describe('an export against an earlier signed checkpoint', () => {
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'export-checkpoint-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reproduces the checkpoint when history is intact, and audit verify says so', async () => {
    const { events } = buildScenario().chain;
    const exportFile = await saved('intact.ndjson', await ndjson(events));
    const note = await checkpointOf(events, 4);
    expect(await matchExportToCheckpoint(exportFile, note, key.jwks)).toEqual({
      ok: true,
      size: 4,
      origin: LOG,
    });
    const checkpointFile = await saved('checkpoint.json', JSON.stringify({ note }));
    const jwksFile = await saved('jwks.json', JSON.stringify({ keys: key.jwks }));
    const lines: string[] = [];
    const output = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
    expect(await auditVerify([exportFile, '--jwks', jwksFile, '--checkpoint', checkpointFile], output)).toBe(
      0,
    );
    expect(lines).toContain(`Checkpoint: the export reproduces the signed checkpoint of ${LOG} at size 4`);
    // A checkpoint proves nothing against an unpinned key.
    expect(
      await auditVerify([exportFile, '--trust-embedded-key', '--checkpoint', checkpointFile], output),
    ).toBe(2);
  });

  it('catches history rewritten and re-signed with the audit key itself, which the export alone cannot', async () => {
    const honest = buildScenario().chain.events;
    const note = await checkpointOf(honest, honest.length);
    // Whoever holds the audit key rewrites event 2, re-chains everything after it and signs again.
    const rewritten = buildScenario((input, index) =>
      index === 1 ? { ...input, data: { ...input.data, justification: 'nothing to see' } } : input,
    ).chain.events;
    const text = await ndjson(rewritten);
    expect(await verifyExport(text, { jwks: key.jwks })).toMatchObject({ ok: true });
    const exportFile = await saved('rewritten.ndjson', text);
    expect(await matchExportToCheckpoint(exportFile, note, key.jwks)).toEqual({
      ok: false,
      reason: expect.stringMatching(/the log was rewritten/),
    });
    const checkpointFile = await saved('honest-checkpoint.txt', note);
    const jwksFile = await saved('jwks2.json', JSON.stringify({ keys: key.jwks }));
    const lines: string[] = [];
    const output = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
    expect(await auditVerify([exportFile, '--jwks', jwksFile, '--checkpoint', checkpointFile], output)).toBe(
      1,
    );
    expect(lines.join('\n')).toMatch(/FAILED: checkpoint .*the log was rewritten/);
  });

  it('refuses a checkpoint signed by another key, a changed one, and an export shorter than it', async () => {
    const { events } = buildScenario().chain;
    const exportFile = await saved('short.ndjson', await ndjson(events.slice(0, 3)));
    const note = await checkpointOf(events, events.length);
    const other = auditKey();
    expect(await matchExportToCheckpoint(exportFile, note, other.jwks)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/not signed by a pinned audit key/),
    });
    const changed = note.replace(`\n${events.length}\n`, `\n${events.length - 1}\n`);
    expect(await matchExportToCheckpoint(exportFile, changed, key.jwks)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/does not verify/),
    });
    expect(await matchExportToCheckpoint(exportFile, note, key.jwks)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/ends at seq 3, before the checkpoint/),
    });
  });
});
