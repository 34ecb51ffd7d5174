import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startLocalWitness, WitnessCore, type LocalWitness } from '../../test/support/tlog-witness.js';
import { consistencyProof, leafHash, MemoryTree, rootAt } from './merkle.js';
import { formatCheckpoint, formatVkey, noteVerifier, parseVkey, signNote } from './tlog-note.js';
import { addCheckpointBody, postAddCheckpoint, witnessCosignatures, type Witness } from './witness-client.js';
import { checkpointNoteOf, checkWitnesses, witnessedCheckpoint, witnessPolicy } from './witness-policy.js';

// Witnesses of the audit log (issue 22): the local tlog-witness the e2e tests use, the log's client of it,
// and the verifier's threshold of known witnesses.
const ORIGIN = 'broker.example/jit-audit';
const logKey = generateKeyPairSync('ed25519').privateKey;
const LOG_VKEY = formatVkey(noteVerifier(ORIGIN, logKey));
const tree = new MemoryTree();
for (let i = 0; i < 20; i++) tree.append(leafHash(Buffer.from(`event ${i}`)));

/** The log's signed checkpoint of its first `size` leaves (signed by `key`, the log's by default). */
async function checkpointAt(size: number, key = logKey, origin = ORIGIN): Promise<string> {
  const root = await rootAt(tree, size);
  return signNote(formatCheckpoint({ origin, size, root, extensions: [] }), origin, key);
}

async function bodyFrom(old: number, size: number): Promise<string> {
  const proof = await consistencyProof(tree, old, size);
  return addCheckpointBody(
    old,
    proof.map((hash) => hash.toString('base64')),
    await checkpointAt(size),
  );
}

const witnessCore = (name = 'witness.test/w1') =>
  new WitnessCore(name, generateKeyPairSync('ed25519').privateKey, [LOG_VKEY], () => 1_765_000_000);

describe('a local tlog-witness', () => {
  it('cosigns a new log from size 0, then only consistent growth from the size it holds', async () => {
    const core = witnessCore();
    const first = core.addCheckpoint(await bodyFrom(0, 5));
    expect(first.status).toBe(200);
    const note = await checkpointAt(5);
    expect(checkWitnesses(note + first.body, witnessPolicy([core.vkey]))).toEqual({
      ok: true,
      cosignedBy: ['witness.test/w1'],
    });

    // A client that does not know the witness's size learns it from the 409.
    expect(core.addCheckpoint(await bodyFrom(0, 9))).toEqual({
      status: 409,
      contentType: 'text/x.tlog.size',
      body: '5\n',
    });
    expect(core.addCheckpoint(await bodyFrom(5, 9)).status).toBe(200);
    expect(core.latest.get(ORIGIN)?.size).toBe(9);
    // The same size again is cosigned again (a retry); an older one is a conflict.
    expect(core.addCheckpoint(await bodyFrom(9, 9)).status).toBe(200);
    expect(core.addCheckpoint(await bodyFrom(5, 7)).status).toBe(409);
  });

  it('refuses a bad proof (422), an unknown log (404), a bad signature (403) and a malformed body (400)', async () => {
    const core = witnessCore();
    expect(core.addCheckpoint(await bodyFrom(0, 6)).status).toBe(200);
    const good = await bodyFrom(6, 13);
    const [oldLine, firstHash] = good.split('\n');
    const flipped = Buffer.from(Buffer.from(firstHash, 'base64').map((byte) => byte ^ 1)).toString('base64');
    const bad = good.replace(`${oldLine}\n${firstHash}\n`, `${oldLine}\n${flipped}\n`);
    expect(core.addCheckpoint(bad)).toMatchObject({ status: 422 });
    expect(core.latest.get(ORIGIN)?.size).toBe(6);

    const otherKey = generateKeyPairSync('ed25519').privateKey;
    const unknown = addCheckpointBody(0, [], await checkpointAt(3, otherKey, 'other.example/log'));
    expect(core.addCheckpoint(unknown).status).toBe(404);
    const forged = addCheckpointBody(6, [], await checkpointAt(6, otherKey));
    expect(core.addCheckpoint(forged).status).toBe(403);
    const tampered = (await bodyFrom(6, 13)).replace('\n13\n', '\n14\n');
    expect(core.addCheckpoint(tampered).status).toBe(403);
    expect(core.addCheckpoint(await bodyFrom(6, 13)).status).toBe(200);
    expect(core.addCheckpoint('old 01\n\n' + (await checkpointAt(13))).status).toBe(400);
    expect(core.addCheckpoint(addCheckpointBody(14, [], await checkpointAt(13))).status).toBe(400);
  });
});

describe("the log's witness client", () => {
  let local: LocalWitness;
  let witness: Witness;

  beforeAll(async () => {
    local = await startLocalWitness({ logVkeys: [LOG_VKEY] });
    witness = { name: local.name, url: local.url, verifier: parseVkey(local.vkey) };
  });

  afterAll(async () => {
    await local.stop();
  });

  it('gets a cosignature over HTTP, a 409 with the size, and keeps only lines that verify', async () => {
    const note = await checkpointAt(4);
    const answer = await postAddCheckpoint(witness, addCheckpointBody(0, [], note));
    expect(answer.status).toBe('cosigned');
    const lines = answer.status === 'cosigned' ? answer.lines : [];
    expect(witnessCosignatures(note, lines, witness)).toEqual(lines);
    expect(await postAddCheckpoint(witness, addCheckpointBody(0, [], await checkpointAt(8)))).toEqual({
      status: 'conflict',
      size: 4,
    });

    // A line of another key is ignored; the witness's own line over another checkpoint fails.
    const stranger = witnessCore('witness.test/w2');
    const strangerLine = stranger.addCheckpoint(await bodyFrom(0, 4)).body.trim();
    expect(() => witnessCosignatures(note, [strangerLine], witness)).toThrow(/without its cosignature/);
    const otherNote = await checkpointAt(3);
    expect(() => witnessCosignatures(otherNote, lines, witness)).toThrow(/does not verify/);
  });

  it('throws when the witness is down, and works again once it is back', async () => {
    await local.stop();
    await expect(
      postAddCheckpoint(witness, addCheckpointBody(4, [], await checkpointAt(4))),
    ).rejects.toThrow();
    await local.start();
    const answer = await postAddCheckpoint(witness, addCheckpointBody(4, [], await checkpointAt(4)));
    expect(answer.status).toBe('cosigned');
  });
});

describe('a threshold of known witnesses', () => {
  const [w1, w2, w3] = ['witness.test/w1', 'witness.test/w2', 'witness.test/w3'].map(witnessCore);

  it('passes with enough cosignatures and names the missing witnesses otherwise', async () => {
    const note = await checkpointAt(5);
    const cosigned =
      note + w1.addCheckpoint(await bodyFrom(0, 5)).body + w2.addCheckpoint(await bodyFrom(0, 5)).body;
    const all = witnessPolicy([w1.vkey, w2.vkey, w3.vkey]);
    expect(all.threshold).toBe(3);
    expect(checkWitnesses(cosigned, all)).toEqual({
      ok: false,
      reason: '2 witness cosignature(s), 3 of 3 required: not cosigned by witness.test/w3',
      cosignedBy: ['witness.test/w1', 'witness.test/w2'],
      missing: ['witness.test/w3'],
    });
    expect(checkWitnesses(cosigned, witnessPolicy([w1.vkey, w2.vkey, w3.vkey], 2))).toMatchObject({
      ok: true,
    });
    expect(checkWitnesses(note, witnessPolicy([w1.vkey]))).toMatchObject({
      ok: false,
      missing: ['witness.test/w1'],
    });
    // The same line twice counts once.
    const line = w3.addCheckpoint(await bodyFrom(0, 5)).body;
    expect(checkWitnesses(note + line + line, witnessPolicy([w1.vkey, w3.vkey], 2)).ok).toBe(false);
  });

  it("fails a note whose known witness's cosignature does not verify", async () => {
    const line = w1.addCheckpoint(await bodyFrom(5, 8)).body;
    const otherNote = await checkpointAt(7);
    expect(checkWitnesses(otherNote + line, witnessPolicy([w1.vkey]))).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/cosignature of witness.test\/w1 does not verify/),
    });
  });

  it('reads a saved checkpoint as a note or as GET /api/audit/checkpoint JSON', async () => {
    const note = (await checkpointAt(8)) + w2.addCheckpoint(await bodyFrom(5, 8)).body;
    const policy = witnessPolicy([w2.vkey]);
    expect(checkpointNoteOf(JSON.stringify({ size: 8, note }))).toBe(note);
    expect(witnessedCheckpoint(JSON.stringify({ note }), policy)).toEqual({
      ok: true,
      line: 'cosigned by witness.test/w2 (1 of 1 required)',
    });
    expect(witnessedCheckpoint('{"size": 8}', policy)).toEqual({
      ok: false,
      reason: 'no signed checkpoint note in it',
    });
  });

  it('refuses log keys, repeated witnesses and impossible thresholds', () => {
    expect(() => witnessPolicy([LOG_VKEY])).toThrow(/not a witness/);
    expect(() => witnessPolicy([w1.vkey, w1.vkey])).toThrow(/named twice/);
    expect(() => witnessPolicy([w1.vkey], 2)).toThrow(/between 1 and 1/);
    expect(() => witnessPolicy([w1.vkey], 0)).toThrow(/between 1 and 1/);
    expect(() => witnessPolicy([])).toThrow(/at least one/);
    expect(() => witnessPolicy([w1.vkey.replace(/\+[0-9a-f]{8}\+/, '+00000000+')])).toThrow(/key ID/);
  });
});
