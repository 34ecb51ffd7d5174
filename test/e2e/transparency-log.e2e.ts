import type { JsonWebKey } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { auditVerify } from '../../apps/cli/audit-verify.js';
import type { ExportedEvent } from '../../libs/audit/manifest.js';
import {
  auditLeafHash,
  MemoryTree,
  rootAt,
  verifyConsistency,
  verifyInclusion,
} from '../../libs/audit/merkle.js';
import { parseCheckpoint, parseVkey, verifyNote } from '../../libs/audit/tlog-note.js';
import { verifyBundle } from '../../libs/audit/verify.js';
import { enrollAll, PROJECT_ROOT, startStack, type Person, type TestStack } from '../support/stack.js';

// The audit log as a Merkle transparency log, end to end (issue 22): the broker signs C2SP checkpoints of the
// tree over its audit events, proves inclusion and consistency, and an auditor checks it all offline with
// nothing but the vkey; a rewrite of an old event, even with the stored tree rebuilt to match, is caught.
const POLICY_DIR = path.join(PROJECT_ROOT, 'test/fixtures/policies/audit');

interface Signed {
  origin: string;
  size: number;
  root: string;
  note: string;
  vkeys: string[];
}

const fromBase64 = (values: string[]) => values.map((value) => Buffer.from(value, 'base64'));

describe('the audit log as a Merkle transparency log', () => {
  let stack: TestStack;
  let alice: Person;
  let auditor: Person;

  /** Every event as the API lists it (the export's form). */
  const allEvents = async (): Promise<ExportedEvent[]> => {
    const events: ExportedEvent[] = [];
    let cursor: string | null = '0';
    while (cursor !== null) {
      const page = await auditor.get(`/api/audit/events?limit=500&cursor=${cursor}`);
      expect(page.status).toBe(200);
      events.push(...(page.body.items as ExportedEvent[]));
      cursor = page.body.nextCursor as string | null;
    }
    return events;
  };

  const signNow = async (): Promise<Signed> => {
    const issued = await auditor.post('/api/audit/checkpoints', {});
    expect(issued.status).toBe(201);
    return issued.body as Signed;
  };

  const fileRequest = async (): Promise<string> => {
    const created = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 600,
      justification: 'transparency log e2e',
    });
    expect(created.status).toBe(201);
    return created.body.id as string;
  };

  beforeAll(async () => {
    stack = await startStack({ policyDir: POLICY_DIR, env: { CHECKPOINT_INTERVAL_SECONDS: '0' } });
    [alice, auditor] = await enrollAll(stack, ['alice', 'erin', 'bob'], { erin: ['auditor'] });
  }, 90_000);

  afterAll(async () => {
    await stack?.close();
  }, 60_000);

  it('signs a checkpoint that verifies offline, and proves every event in it', async () => {
    const first = await signNow();
    const verifier = parseVkey(first.vkeys[0]);
    const verified = verifyNote(first.note, [verifier]);
    expect(verified.signedBy).toEqual([first.origin]);
    const checkpoint = parseCheckpoint(verified.text);
    expect(checkpoint).toMatchObject({ origin: first.origin, size: first.size });
    expect(checkpoint.root.toString('base64')).toBe(first.root);

    const events = await allEvents();
    expect(events.length).toBeGreaterThanOrEqual(first.size);
    for (const event of events.slice(0, first.size)) {
      const answer = await auditor.get(`/api/audit/proofs/inclusion?seq=${event.seq}&size=${first.size}`);
      expect(answer.status).toBe(200);
      const leaf = auditLeafHash(event);
      expect(answer.body.leafHash).toBe(leaf.toString('base64'));
      const check = verifyInclusion(
        leaf,
        event.seq - 1,
        first.size,
        fromBase64(answer.body.proof),
        checkpoint.root,
      );
      expect(check).toEqual({ ok: true });
    }
    // The stored tree and one rebuilt from the events agree.
    const rebuilt = new MemoryTree();
    for (const event of events.slice(0, first.size)) rebuilt.append(auditLeafHash(event));
    expect((await rootAt(rebuilt, first.size)).equals(checkpoint.root)).toBe(true);

    // Any changed byte of the note fails it.
    expect(() =>
      verifyNote(first.note.replace(`\n${first.size}\n`, `\n${first.size + 1}\n`), [verifier]),
    ).toThrow(/does not verify/);
  }, 60_000);

  it('proves two checkpoints before and after activity consistent', async () => {
    const before = await signNow();
    await fileRequest();
    await fileRequest();
    const after = await signNow();
    expect(after.size).toBeGreaterThan(before.size);
    const answer = await auditor.get(`/api/audit/proofs/consistency?from=${before.size}&to=${after.size}`);
    expect(answer.status).toBe(200);
    const proof = fromBase64(answer.body.proof);
    const roots = [before, after].map((signed) => Buffer.from(signed.root, 'base64'));
    expect(verifyConsistency(before.size, after.size, roots[0], roots[1], proof)).toEqual({ ok: true });
    const flipped = proof.map((hash, i) => (i === 0 ? Buffer.from(hash.map((byte) => byte ^ 1)) : hash));
    expect(verifyConsistency(before.size, after.size, roots[0], roots[1], flipped).ok).toBe(false);
    // The checkpoint of a size is kept and served as it was signed.
    const again = await auditor.get(`/api/audit/checkpoint?size=${before.size}`);
    expect({ status: again.status, note: again.body.note }).toEqual({ status: 200, note: before.note });
  }, 60_000);

  it('refuses bad proof queries with 400 and unknown sizes with 404', async () => {
    for (const query of ['seq=0&size=1', 'seq=1', 'seq=x&size=2', `seq=5&size=4`, 'seq=1&size=999999999']) {
      const answer = await auditor.get(`/api/audit/proofs/inclusion?${query}`);
      expect({ query, status: answer.status }).toEqual({ query, status: 400 });
    }
    expect((await auditor.get('/api/audit/proofs/consistency?from=3&to=2')).status).toBe(400);
    expect((await auditor.get('/api/audit/checkpoint?size=999999999')).status).toBe(404);
    expect((await alice.get('/api/audit/checkpoint')).status).toBe(403);
  }, 30_000);

  it('carries the inclusion of a bundle in a signed checkpoint, verified offline by audit verify', async () => {
    const requestId = await fileRequest();
    const bundle = (await auditor.get(`/api/audit/requests/${requestId}/bundle`)).body;
    const jwks = (await fetch(`${stack.baseUrl}/.well-known/audit-jwks.json`).then((r) => r.json())) as {
      keys: JsonWebKey[];
    };
    expect(bundle.transparency.proofs).toHaveLength(bundle.events.length);
    expect(await verifyBundle(bundle, { jwks: jwks.keys })).toMatchObject({
      ok: true,
      transparency: { events: bundle.events.length, checkpointSize: expect.any(Number) },
    });

    const scratch = await mkdtemp(path.join(tmpdir(), 'jit-tlog-'));
    try {
      const files = { bundle: path.join(scratch, 'bundle.json'), jwks: path.join(scratch, 'jwks.json') };
      await writeFile(files.bundle, JSON.stringify(bundle));
      await writeFile(files.jwks, JSON.stringify(jwks));
      const lines: string[] = [];
      const output = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
      expect(await auditVerify([files.bundle, '--jwks', files.jwks], output)).toBe(0);
      expect(lines.join('\n')).toMatch(/Transparency: all \d+ events proven in the signed checkpoint/);

      // A changed byte of the checkpoint, or of a proof, fails with a reason.
      const size = String(bundle.transparency.checkpoint.split('\n')[1]);
      const badNote = structuredClone(bundle);
      badNote.transparency.checkpoint = badNote.transparency.checkpoint.replace(
        `\n${size}\n`,
        `\n${Number(size) + 1}\n`,
      );
      expect(await verifyBundle(badNote, { jwks: jwks.keys })).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/transparency: .*does not verify/),
      });
      const badProof = structuredClone(bundle);
      const first = badProof.transparency.proofs[0];
      first.proof[0] = Buffer.from(Buffer.from(first.proof[0], 'base64').map((byte) => byte ^ 1)).toString(
        'base64',
      );
      expect(await verifyBundle(badProof, { jwks: jwks.keys })).toMatchObject({
        ok: false,
        seq: first.seq,
        reason: expect.stringMatching(/not in the signed checkpoint/),
      });
      await writeFile(files.bundle, JSON.stringify(badProof));
      expect(await auditVerify([files.bundle, '--jwks', files.jwks], output)).toBe(1);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }, 60_000);

  it('proves saved checkpoints, and the one a bundle carries, consistent with audit verify --consistency', async () => {
    const before = await signNow();
    const requestId = await fileRequest();
    const after = await signNow();
    const bundle = (await auditor.get(`/api/audit/requests/${requestId}/bundle`)).body;
    const bundleSize = Number(String(bundle.transparency.checkpoint).split('\n')[1]);
    const jwks = await fetch(`${stack.baseUrl}/.well-known/audit-jwks.json`).then((r) => r.json());
    const proofOf = async (from: number, to: number) => {
      const answer = await auditor.get(`/api/audit/proofs/consistency?from=${from}&to=${to}`);
      expect(answer.status).toBe(200);
      return answer.body as unknown;
    };
    const scratch = await mkdtemp(path.join(tmpdir(), 'jit-tlog-consistency-'));
    const save = async (name: string, value: unknown) => {
      const file = path.join(scratch, name);
      await writeFile(file, typeof value === 'string' ? value : JSON.stringify(value));
      return file;
    };
    try {
      // What an auditor keeps: the checkpoint route's answer, a bare note, a bundle, and the proofs.
      const [jwksFile, older, newer, bundleFile, proof, bundleProof] = [
        await save('jwks.json', jwks),
        await save('before.json', before),
        await save('after.note', after.note),
        await save('bundle.json', bundle),
        await save('proof.json', await proofOf(before.size, after.size)),
        await save('bundle-proof.json', await proofOf(before.size, bundleSize)),
      ];
      const lines: string[] = [];
      const output = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
      const verify = (args: string[]) => auditVerify(['--jwks', jwksFile, '--consistency', ...args], output);
      expect(await verify([older, newer, '--proof', proof])).toBe(0);
      expect(lines.at(-1)).toMatch(
        new RegExp(
          `^OK: the log ${before.origin} at size ${after.size} .* extends its checkpoint at size ${before.size} `,
        ),
      );
      expect(await verify([older, bundleFile, '--proof', bundleProof])).toBe(0);
      expect(await verify([newer, older, '--proof', proof])).toBe(1);
      expect(lines.at(-1)).toMatch(/^FAILED: sizes reversed/);
      expect(await verify([older, bundleFile, '--proof', proof])).toBe(bundleSize === after.size ? 0 : 1);
      // A bundle alone proves its events in the checkpoint it carries; --checkpoint is for exports.
      expect(await auditVerify([bundleFile, '--jwks', jwksFile, '--checkpoint', older], output)).toBe(1);
      expect(lines.at(-1)).toMatch(/^FAILED: checkpoint .*a bundle carries its own, which --consistency/);
      const { transparency: _dropped, ...bare } = bundle as Record<string, unknown>;
      expect(await auditVerify([await save('bare.json', bare), '--jwks', jwksFile], output)).toBe(0);
      expect(lines).toContain(
        'Transparency: none (this bundle carries no inclusion proofs in a signed checkpoint)',
      );
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }, 60_000);

  it('proves a rewritten old event inconsistent, even after the stored tree is rebuilt to match', async () => {
    const honest = await signNow();
    const owner = new pg.Client({ connectionString: stack.ownerUrl });
    await owner.connect();
    try {
      // An attacker with the owner role rewrites event 2 and rebuilds the tree from the rewritten log.
      await owner.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete');
      await owner.query(`UPDATE audit_events SET data = data || '{"rewritten": true}' WHERE seq = 2`);
      await owner.query('ALTER TABLE audit_merkle_nodes DISABLE TRIGGER audit_merkle_nodes_no_update_delete');
      await owner.query('DELETE FROM audit_merkle_nodes');
      await owner.query('UPDATE audit_merkle_size SET size = 0');
    } finally {
      await owner.end();
    }
    await fileRequest();
    const next = await signNow();
    expect(next.size).toBeGreaterThan(honest.size);
    const answer = await auditor.get(`/api/audit/proofs/consistency?from=${honest.size}&to=${next.size}`);
    expect(answer.status).toBe(200);
    const check = verifyConsistency(
      honest.size,
      next.size,
      Buffer.from(honest.root, 'base64'),
      Buffer.from(next.root, 'base64'),
      fromBase64(answer.body.proof),
    );
    expect(check).toEqual({ ok: false, reason: expect.stringMatching(/rewritten/) });

    // A later export, recomputed offline, does not reach the earlier checkpoint's root either.
    const recomputed = new MemoryTree();
    for (const event of (await allEvents()).slice(0, honest.size)) recomputed.append(auditLeafHash(event));
    expect((await rootAt(recomputed, honest.size)).toString('base64')).not.toBe(honest.root);
  }, 60_000);
});
