import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { auditKey, buildScenario, exportedText } from '../../test/support/audit-chain.js';
import { checkpointNoteIn, checkpointsConsistent, exportsConsistent } from './consistency-check.js';
import type { ExportedEvent } from './manifest.js';
import { auditLeafHash, consistencyProof, MemoryTree, rootAt } from './merkle.js';
import { formatCheckpoint, signNote } from './tlog-note.js';

const key = auditKey();
const LOG = 'broker.example/jit-audit';
const events = buildScenario().chain.events;
let dir: string;

function treeOf(list: readonly ExportedEvent[]): MemoryTree {
  const tree = new MemoryTree();
  for (const event of list) tree.append(auditLeafHash(event));
  return tree;
}

/** The signed checkpoint of the first `size` events, as the broker signs it. */
async function checkpointOf(size: number, signer = key.privateKey, origin = LOG): Promise<string> {
  const root = await rootAt(treeOf(events), size);
  return signNote(formatCheckpoint({ origin, size, root, extensions: [] }), origin, signer);
}

/** The JSON GET /api/audit/proofs/consistency answers. */
async function proofOf(from: number, to: number): Promise<string> {
  const proof = await consistencyProof(treeOf(events), from, to);
  return JSON.stringify({ from, to, proof: proof.map((hash) => hash.toString('base64')) });
}

async function saved(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

describe('two signed checkpoints and a consistency proof', () => {
  it('proves a valid pair, from the note, the checkpoint route JSON or a bundle', async () => {
    const [older, newer] = [await checkpointOf(3), await checkpointOf(events.length)];
    const result = checkpointsConsistent(
      older,
      JSON.stringify({ note: newer }),
      await proofOf(3, events.length),
      key.jwks,
    );
    expect(result).toMatchObject({
      ok: true,
      origin: LOG,
      older: { size: 3 },
      newer: { size: events.length },
    });
    const fromBundle = JSON.stringify({ type: 'bundle', transparency: { checkpoint: newer, proofs: [] } });
    expect(checkpointNoteIn(fromBundle)).toBe(newer);
    // Equal sizes: an empty proof, and the same root.
    expect(checkpointsConsistent(older, older, await proofOf(3, 3), key.jwks)).toMatchObject({ ok: true });
  });

  it('refuses sizes given in reverse', async () => {
    const [older, newer] = [await checkpointOf(3), await checkpointOf(events.length)];
    expect(checkpointsConsistent(newer, older, await proofOf(3, events.length), key.jwks)).toEqual({
      ok: false,
      reason: `sizes reversed: the older checkpoint is of size ${events.length}, the newer of 3 (give the older first)`,
    });
  });

  it('refuses a proof for other sizes, and one that does not match', async () => {
    const [older, newer] = [await checkpointOf(3), await checkpointOf(events.length)];
    expect(checkpointsConsistent(older, newer, await proofOf(2, events.length), key.jwks)).toEqual({
      ok: false,
      reason: `the proof is between sizes 2 and ${events.length}, not the checkpoints' 3 and ${events.length}`,
    });
    const proof = JSON.parse(await proofOf(3, events.length)) as { proof: string[] };
    proof.proof[0] = Buffer.from(Buffer.from(proof.proof[0], 'base64').map((byte) => byte ^ 1)).toString(
      'base64',
    );
    const broken = JSON.stringify({ from: 3, to: events.length, ...proof });
    expect(checkpointsConsistent(older, newer, broken, key.jwks)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^the proof does not match the checkpoints: /),
    });
    expect(checkpointsConsistent(older, newer, '{"from":3}', key.jwks)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/not a consistency proof/),
    });
  });

  it('refuses a forged or altered signature and a checkpoint of another log', async () => {
    const forger = auditKey();
    const forged = await checkpointOf(events.length, forger.privateKey);
    const proof = await proofOf(3, events.length);
    expect(checkpointsConsistent(await checkpointOf(3), forged, proof, key.jwks)).toEqual({
      ok: false,
      reason: `the newer checkpoint: the checkpoint of ${LOG} is not signed by a pinned audit key`,
    });
    const altered = (await checkpointOf(3)).replace('\n3\n', '\n2\n');
    expect(checkpointsConsistent(altered, await checkpointOf(events.length), proof, key.jwks)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^the older checkpoint: .*does not verify/),
    });
    const other = await checkpointOf(events.length, key.privateKey, 'other.example/jit-audit');
    expect(checkpointsConsistent(await checkpointOf(3), other, proof, key.jwks)).toEqual({
      ok: false,
      reason: `the checkpoints are of different logs: "${LOG}" and "other.example/jit-audit"`,
    });
  });
});

describe('two NDJSON exports', () => {
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'consistency-check-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const ndjson = (list: readonly ExportedEvent[]) => exportedText(list, 'ndjson', key.signManifest);

  it('proves the older export a prefix of the newer, with both roots recomputed', async () => {
    const older = await saved('older.ndjson', await ndjson(events.slice(0, 3)));
    const newer = await saved('newer.ndjson', await ndjson(events));
    const result = await exportsConsistent(older, newer);
    expect(result).toEqual({
      ok: true,
      older: { size: 3, root: await rootAt(treeOf(events), 3) },
      newer: { size: events.length, root: await rootAt(treeOf(events), events.length) },
    });
  });

  it('names the first differing seq when an old event was rewritten and re-chained', async () => {
    const older = await saved('honest.ndjson', await ndjson(events.slice(0, 3)));
    const rewritten = buildScenario((input, index) =>
      index === 1 ? { ...input, data: { ...input.data, justification: 'nothing to see' } } : input,
    ).chain.events;
    const newer = await saved('rewritten.ndjson', await ndjson(rewritten));
    expect(await exportsConsistent(older, newer)).toEqual({
      ok: false,
      seq: 2,
      reason:
        "the newer export's first 3 events do not give the older export's root: event 2 differs, the log was rewritten",
    });
  });

  it('refuses exports given in reverse, and a filtered export', async () => {
    const older = await saved('short.ndjson', await ndjson(events.slice(0, 3)));
    const newer = await saved('long.ndjson', await ndjson(events));
    expect(await exportsConsistent(newer, older)).toMatchObject({
      ok: false,
      seq: null,
      reason: expect.stringMatching(/^sizes reversed: the older export holds \d+ events, the newer 3/),
    });
    const gappy = await saved('gappy.ndjson', `${JSON.stringify(events[0])}\n${JSON.stringify(events[2])}\n`);
    expect(await exportsConsistent(gappy, newer)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/not an unfiltered NDJSON export from seq 1/),
    });
    await expect(exportsConsistent(path.join(dir, 'missing.ndjson'), newer)).rejects.toThrow(/ENOENT/);
  });
});
