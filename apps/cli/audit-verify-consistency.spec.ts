import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { auditVerify } from './audit-verify.js';
import { auditKey, buildScenario, exportedText } from '../../test/support/audit-chain.js';
import type { ExportedEvent } from '../../libs/audit/manifest.js';
import { auditLeafHash, consistencyProof, MemoryTree, rootAt } from '../../libs/audit/merkle.js';
import { formatCheckpoint, signNote } from '../../libs/audit/tlog-note.js';

const key = auditKey();
const LOG = 'broker.example/jit-audit';
const events = buildScenario().chain.events;
let dir: string;
let jwksFile: string;

function treeOf(list: readonly ExportedEvent[]): MemoryTree {
  const tree = new MemoryTree();
  for (const event of list) tree.append(auditLeafHash(event));
  return tree;
}

async function saved(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

/** A checkpoint as GET /api/audit/checkpoint answers it, saved; signed by `signer`. */
async function checkpointFile(name: string, size: number, signer = key.privateKey): Promise<string> {
  const root = await rootAt(treeOf(events), size);
  const note = signNote(formatCheckpoint({ origin: LOG, size, root, extensions: [] }), LOG, signer);
  return saved(name, JSON.stringify({ origin: LOG, size, root: root.toString('base64'), note }));
}

/** GET /api/audit/proofs/consistency?from=&to=, saved. */
async function proofFile(name: string, from: number, to: number): Promise<string> {
  const proof = await consistencyProof(treeOf(events), from, to);
  return saved(name, JSON.stringify({ from, to, proof: proof.map((hash) => hash.toString('base64')) }));
}

async function run(args: string[]): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const output = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
  const code = await auditVerify(args, output);
  return { code, text: lines.join('\n') };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'audit-verify-consistency-'));
  jwksFile = await saved('jwks.json', JSON.stringify({ keys: key.jwks }));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('audit verify --consistency with two signed checkpoints and a proof', () => {
  it('proves the newer checkpoint extends the older, and says what it proved', async () => {
    const older = await checkpointFile('old.json', 3);
    const newer = await checkpointFile('new.json', events.length);
    const proof = await proofFile('proof.json', 3, events.length);
    const result = await run(['--jwks', jwksFile, '--consistency', older, newer, '--proof', proof]);
    expect(result.code).toBe(0);
    const roots = [3, events.length].map(async (size) =>
      (await rootAt(treeOf(events), size)).toString('base64'),
    );
    expect(result.text).toBe(
      `OK: the log ${LOG} at size ${events.length} (root ${await roots[1]}) extends its checkpoint at size 3 ` +
        `(root ${await roots[0]}): consistency proven, both checkpoints signed by a pinned audit key`,
    );
  });

  it('fails (exit 1) with the reason: reversed sizes, a proof for other sizes, a forged signature', async () => {
    const older = await checkpointFile('old2.json', 3);
    const newer = await checkpointFile('new2.json', events.length);
    const proof = await proofFile('proof2.json', 3, events.length);
    expect(await run(['--jwks', jwksFile, '--consistency', newer, older, '--proof', proof])).toEqual({
      code: 1,
      text: expect.stringMatching(/^FAILED: sizes reversed: /),
    });
    const other = await proofFile('proof-other.json', 2, events.length);
    expect(await run(['--jwks', jwksFile, '--consistency', older, newer, '--proof', other])).toEqual({
      code: 1,
      text: `FAILED: the proof is between sizes 2 and ${events.length}, not the checkpoints' 3 and ${events.length}`,
    });
    const forged = await checkpointFile('forged.json', events.length, auditKey().privateKey);
    expect(await run(['--jwks', jwksFile, '--consistency', older, forged, '--proof', proof])).toEqual({
      code: 1,
      text: `FAILED: the newer checkpoint: the checkpoint of ${LOG} is not signed by a pinned audit key`,
    });
  });

  it('is a usage error (exit 2) without --jwks or with a file it cannot read', async () => {
    const older = await checkpointFile('old3.json', 3);
    const newer = await checkpointFile('new3.json', events.length);
    const proof = await proofFile('proof3.json', 3, events.length);
    expect((await run(['--consistency', older, newer, '--proof', proof])).code).toBe(2);
    expect((await run(['--jwks', jwksFile, '--consistency', older, '--proof', proof])).code).toBe(2);
    const missing = await run([
      '--jwks',
      jwksFile,
      '--consistency',
      older,
      newer,
      '--proof',
      `${proof}.gone`,
    ]);
    expect(missing).toEqual({ code: 2, text: expect.stringMatching(/^Cannot read .*proof3\.json\.gone/) });
  });
});

describe('audit verify --consistency with two NDJSON exports', () => {
  const ndjson = (list: readonly ExportedEvent[], signer = key.signManifest) =>
    exportedText(list, 'ndjson', signer);

  it('verifies both exports and proves the older a prefix of the newer', async () => {
    const older = await saved('older.ndjson', await ndjson(events.slice(0, 3)));
    const newer = await saved('newer.ndjson', await ndjson(events));
    const result = await run(['--jwks', jwksFile, '--consistency', older, newer]);
    expect(result.code).toBe(0);
    expect(result.text).toMatch(/^Verified: .*older\.ndjson \(3 events, signed by pinned audit key/m);
    expect(result.text).toMatch(/^OK: .*newer\.ndjson extends .*older\.ndjson: its first 3 events give/m);
  });

  it('names the first differing seq when an old event was rewritten and the chain re-signed', async () => {
    const older = await saved('honest.ndjson', await ndjson(events.slice(0, 3)));
    const rewritten = buildScenario((input, index) =>
      index === 1 ? { ...input, data: { ...input.data, justification: 'nothing to see' } } : input,
    ).chain.events;
    // Re-signed with the audit key itself: each export verifies alone; only the comparison catches it.
    const newer = await saved('rewritten.ndjson', await ndjson(rewritten));
    const result = await run(['--jwks', jwksFile, '--consistency', older, newer]);
    expect(result.code).toBe(1);
    expect(result.text).toMatch(/^FAILED at seq 2: .*event 2 differs, the log was rewritten$/m);
  });

  it('refuses an export signed by a key that is not pinned', async () => {
    const older = await saved('older4.ndjson', await ndjson(events.slice(0, 3)));
    const newer = await saved('unpinned.ndjson', await ndjson(events, auditKey().signManifest));
    const result = await run(['--jwks', jwksFile, '--consistency', older, newer]);
    expect(result.code).toBe(1);
    expect(result.text).toMatch(/^FAILED: .*unpinned\.ndjson: .*not among the pinned keys/m);
  });
});
