import type { JsonWebKey } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { auditVerify } from '../../apps/cli/audit-verify.js';
import { parseVkey } from '../../libs/audit/tlog-note.js';
import { addCheckpointBody, postAddCheckpoint } from '../../libs/audit/witness-client.js';
import { checkWitnesses, witnessPolicy } from '../../libs/audit/witness-policy.js';
import { startLocalWitness, type LocalWitness } from '../support/tlog-witness.js';
import {
  enrollAll,
  PROJECT_ROOT,
  startStack,
  waitFor,
  type Person,
  type TestStack,
} from '../support/stack.js';

// Witnesses of the audit transparency log, end to end (issue 22): the worker submits each checkpoint it signs
// to a local c2sp.org/tlog-witness with a consistency proof and keeps the cosignature it gets back; the
// checkpoint route serves it in the note, and `audit verify --witness` demands it. A checkpoint signed while
// the witness was down lacks it and fails that demand, naming the witness; the witness refuses a bad proof.
const POLICY_DIR = path.join(PROJECT_ROOT, 'test/fixtures/policies/audit');

interface Signed {
  origin: string;
  size: number;
  note: string;
  vkeys: string[];
}

describe('witnesses of the audit transparency log', () => {
  let stack: TestStack;
  let witness: LocalWitness;
  let alice: Person;
  let auditor: Person;
  let scratch: string;
  /** A cosigned checkpoint and one signed while the witness was stopped, as an auditor saved them. */
  const saved: { cosigned?: Signed; unwitnessed?: Signed } = {};

  /** The largest checkpoint size the witness's cosignature is stored for (0: none). */
  const cosignedSize = async (): Promise<number> => {
    const { rows } = await stack.db.query<{ size: string | null }>(
      `SELECT max(size)::text AS size FROM audit_tlog_cosignatures WHERE witness = $1`,
      [witness.name],
    );
    return Number(rows[0].size ?? 0);
  };
  const latestCheckpointSize = async (): Promise<number> => {
    const { rows } = await stack.db.query<{ size: string | null }>(
      `SELECT max(size)::text AS size FROM audit_tlog_checkpoints`,
    );
    return Number(rows[0].size ?? 0);
  };
  const checkpointOf = async (size: number): Promise<Signed> => {
    const answer = await auditor.get(`/api/audit/checkpoint?size=${size}`);
    expect(answer.status).toBe(200);
    return answer.body as Signed;
  };
  const fileRequest = async () => {
    const created = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 600,
      justification: 'tlog witness e2e',
    });
    expect(created.status).toBe(201);
  };

  beforeAll(async () => {
    // The witness learns the log's key once the broker has one; until then it answers 404 (unknown log).
    witness = await startLocalWitness({ name: 'witness.test/w1', logVkeys: [] });
    const witnesses = [{ name: witness.name, url: witness.url, vkey: witness.vkey }];
    stack = await startStack({
      policyDir: POLICY_DIR,
      env: { CHECKPOINT_INTERVAL_SECONDS: '1', AUDIT_WITNESSES: JSON.stringify(witnesses) },
    });
    [alice, auditor] = await enrollAll(stack, ['alice', 'erin', 'bob'], { erin: ['auditor'] });
    const issued = await auditor.post('/api/audit/checkpoints', {});
    expect(issued.status).toBe(201);
    witness.core.trustLog((issued.body as Signed).vkeys[0]);
    scratch = await mkdtemp(path.join(tmpdir(), 'jit-witness-'));
  }, 90_000);

  afterAll(async () => {
    await stack?.close();
    await witness?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }, 60_000);

  it('has the witness cosign a checkpoint, and serves the cosignature in its note', async () => {
    const size = await waitFor(
      async () => ((await cosignedSize()) > 0 ? cosignedSize() : undefined),
      20_000,
      'a witness cosignature',
    );
    const signed = await checkpointOf(size);
    const verified = checkWitnesses(signed.note, witnessPolicy([witness.vkey]));
    expect(verified).toEqual({ ok: true, cosignedBy: [witness.name] });
    expect(witness.core.latest.get(signed.origin)?.size).toBeGreaterThanOrEqual(size);
    saved.cosigned = signed;
  }, 30_000);

  it('signs checkpoints while the witness is down, without its cosignature, and catches up after', async () => {
    const before = await cosignedSize();
    await witness.stop();
    await fileRequest();
    const size = await waitFor(
      async () => {
        const latest = await latestCheckpointSize();
        return latest > before ? latest : undefined;
      },
      20_000,
      'a checkpoint signed while the witness is down',
    );
    const signed = await checkpointOf(size);
    expect(signed.note).not.toContain(`\u2014 ${witness.name} `);
    saved.unwitnessed = signed;

    // Back up: the worker submits the latest checkpoint again, from the size the witness last cosigned.
    await witness.start();
    const caughtUp = await waitFor(
      async () => ((await cosignedSize()) >= size ? cosignedSize() : undefined),
      20_000,
      'the witness to cosign again',
    );
    expect(witness.core.latest.get(signed.origin)?.size).toBe(caughtUp);
    expect((await checkpointOf(caughtUp)).note).toContain(`\u2014 ${witness.name} `);
  }, 60_000);

  it('passes audit verify --witness on the cosigned checkpoint, and fails it naming the witness otherwise', async () => {
    const body = { format: 'ndjson', filters: {} };
    const stepUp = await auditor.stepUp('audit.export', 'audit', body);
    const response = await fetch(`${stack.baseUrl}/api/audit/export`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: auditor.cookie, origin: stack.origin },
      body: JSON.stringify({ ...body, stepUp }),
    });
    expect(response.status).toBe(200);
    const jwks = (await fetch(`${stack.baseUrl}/.well-known/audit-jwks.json`).then((r) => r.json())) as {
      keys: JsonWebKey[];
    };
    const files = {
      export: path.join(scratch, 'audit.ndjson'),
      jwks: path.join(scratch, 'jwks.json'),
      cosigned: path.join(scratch, 'cosigned.json'),
      unwitnessed: path.join(scratch, 'unwitnessed.json'),
    };
    await writeFile(files.export, await response.text());
    await writeFile(files.jwks, JSON.stringify(jwks));
    await writeFile(files.cosigned, JSON.stringify(saved.cosigned));
    await writeFile(files.unwitnessed, JSON.stringify(saved.unwitnessed));

    const run = async (checkpoint: string, ...extra: string[]) => {
      const lines: string[] = [];
      const output = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
      const args = [files.export, '--jwks', files.jwks, '--checkpoint', checkpoint, ...extra];
      return { code: await auditVerify(args, output), text: lines.join('\n') };
    };
    const demanding = ['--witness', witness.vkey];
    const passed = await run(files.cosigned, ...demanding);
    expect(passed).toEqual({
      code: 0,
      text: expect.stringContaining(`Witnesses: cosigned by ${witness.name}`),
    });

    // The export reproduces the unwitnessed checkpoint too; only the witness demand fails it.
    expect((await run(files.unwitnessed)).code).toBe(0);
    const failed = await run(files.unwitnessed, ...demanding);
    expect(failed.code).toBe(1);
    expect(failed.text).toMatch(
      new RegExp(`FAILED: checkpoint .*unwitnessed\\.json: .*not cosigned by ${witness.name}`),
    );

    // One of two known witnesses is enough when the threshold says so.
    const other = await startLocalWitness({ name: 'witness.test/w2', logVkeys: [] });
    await other.stop();
    const both = [...demanding, '--witness', other.vkey];
    expect((await run(files.cosigned, ...both)).code).toBe(1);
    expect((await run(files.cosigned, ...both, '--witness-threshold', '1')).code).toBe(0);
  }, 60_000);

  it('has a witness refuse a bad consistency proof (422) and accept the right one', async () => {
    const [first, second] = [saved.cosigned!, saved.unwitnessed!];
    const fresh = await startLocalWitness({ name: 'witness.test/w3', logVkeys: first.vkeys });
    try {
      const target = { name: fresh.name, url: fresh.url, verifier: parseVkey(fresh.vkey) };
      expect((await postAddCheckpoint(target, addCheckpointBody(0, [], first.note))).status).toBe('cosigned');
      const answer = await auditor.get(`/api/audit/proofs/consistency?from=${first.size}&to=${second.size}`);
      expect(answer.status).toBe(200);
      const proof = answer.body.proof as string[];
      const flipped = proof.map((hash, i) =>
        i === 0 ? Buffer.from(Buffer.from(hash, 'base64').map((byte) => byte ^ 1)).toString('base64') : hash,
      );
      const refused = await postAddCheckpoint(target, addCheckpointBody(first.size, flipped, second.note));
      expect(refused).toEqual({ status: 'refused', reason: expect.stringMatching(/^HTTP 422/) });
      expect(fresh.core.latest.get(first.origin)?.size).toBe(first.size);
      const accepted = await postAddCheckpoint(target, addCheckpointBody(first.size, proof, second.note));
      expect(accepted.status).toBe('cosigned');
    } finally {
      await fresh.stop();
    }
  }, 30_000);
});
