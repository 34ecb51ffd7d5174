import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { auditKey, exportedText, SyntheticChain } from '../../test/support/audit-chain.js';
import { AuditAction } from './audit-actions.js';
import {
  checkpointSignatureValid,
  checkpointSigningInput,
  parseCheckpointData,
  signCheckpoint,
  type CheckpointData,
} from './checkpoint.js';
import type { ExportedEvent } from './manifest.js';
import { verifyExport } from './verify.js';

const key = auditKey();

/** A different base64url character in the middle: always different decoded bytes. */
function flipMiddle(value: string): string {
  const at = Math.floor(value.length / 2);
  return `${value.slice(0, at)}${value[at] === 'A' ? 'B' : 'A'}${value.slice(at + 1)}`;
}

/** A chain of `before` plain events, then a checkpoint of its head (as appendCheckpoint writes it), then one more. */
function chainWithCheckpoint(
  rewrite: (data: CheckpointData) => Record<string, unknown> = (data) => ({ ...data }),
  signer: { kid: string; privateKey: typeof key.privateKey } = key,
): ExportedEvent[] {
  const chain = new SyntheticChain();
  for (let index = 0; index < 3; index++) {
    chain.append({ actorId: 'system', action: 'test.event', subjectType: 'test', subjectId: `t-${index}` });
  }
  const head = chain.head;
  const data = signCheckpoint(
    { seq: head.seq, hash: head.hash, at: '2026-03-01T09:00:04.000Z' },
    signer.kid,
    signer.privateKey,
  );
  chain.append({
    actorId: 'system',
    action: AuditAction.AuditCheckpoint,
    subjectType: 'audit',
    subjectId: 'audit',
    data: rewrite(data),
  });
  chain.append({ actorId: 'system', action: 'test.event', subjectType: 'test', subjectId: 'after' });
  return chain.events;
}

function ndjsonOf(events: readonly ExportedEvent[], filters = {}): Promise<string> {
  return exportedText(events, 'ndjson', key.signManifest, { filters });
}

describe('checkpoint signatures', () => {
  const statement = { seq: 7, hash: 'ab'.repeat(32), at: '2026-03-01T09:00:00.000Z' };

  it('signs JCS of the statement tagged as a checkpoint, and verifies only that statement and key', () => {
    expect(checkpointSigningInput(statement).toString()).toBe(
      `{"at":"2026-03-01T09:00:00.000Z","hash":"${'ab'.repeat(32)}","seq":7,"type":"checkpoint"}`,
    );
    const signed = signCheckpoint(statement, key.kid, key.privateKey);
    expect(parseCheckpointData({ ...signed })).toEqual(signed);
    expect(checkpointSignatureValid(signed, key.jwks[0])).toBe(true);
    expect(checkpointSignatureValid({ ...signed, seq: 8 }, key.jwks[0])).toBe(false);
    expect(checkpointSignatureValid({ ...signed, hash: 'cd'.repeat(32) }, key.jwks[0])).toBe(false);
    expect(checkpointSignatureValid({ ...signed, at: '2026-03-01T09:00:01.000Z' }, key.jwks[0])).toBe(false);
    expect(checkpointSignatureValid(signed, auditKey().jwks[0])).toBe(false);
  });

  it('names what is malformed in checkpoint data', () => {
    const signed = { ...signCheckpoint(statement, key.kid, key.privateKey) } as Record<string, unknown>;
    expect(parseCheckpointData({ ...signed, seq: '7' })).toBe('checkpoint seq is not a positive integer');
    expect(parseCheckpointData({ ...signed, hash: 'AB'.repeat(32) })).toBe(
      'checkpoint hash is not 64 lowercase hex digits',
    );
    expect(parseCheckpointData({ ...signed, at: 'soon' })).toBe('checkpoint at is not a time');
    expect(parseCheckpointData({ ...signed, kid: '' })).toBe('checkpoint kid is missing');
    expect(parseCheckpointData({ ...signed, alg: 'ES256' })).toBe('checkpoint alg is not "EdDSA"');
    expect(parseCheckpointData({ ...signed, signature: 'not base64url!' })).toBe(
      'checkpoint signature is not base64url',
    );
  });
});

describe('verifyExport checks the checkpoints an export holds', () => {
  it('accepts a genuine checkpoint, pinned or against the manifest key, and counts it', async () => {
    const text = await ndjsonOf(chainWithCheckpoint());
    expect(await verifyExport(text, { jwks: key.jwks })).toMatchObject({
      ok: true,
      counts: { events: 5, checkpoints: 1 },
    });
    expect(await verifyExport(text, { trustEmbeddedKey: true })).toMatchObject({
      ok: true,
      keyPinned: false,
      counts: { checkpoints: 1 },
    });
  });

  it('accepts it in a filtered export without the event it covers (its hash is the prevHash)', async () => {
    const text = await ndjsonOf(chainWithCheckpoint(), { action: AuditAction.AuditCheckpoint });
    expect(await verifyExport(text, { jwks: key.jwks })).toMatchObject({
      ok: true,
      counts: { events: 1, checkpoints: 1 },
    });
  });

  it.each([
    [
      'a bad signature',
      (data: CheckpointData) => ({ ...data, signature: flipMiddle(data.signature) }),
      /^the checkpoint signature does not verify with key /,
    ],
    [
      'another seq than the one before it',
      (data: CheckpointData) => ({ ...data, seq: data.seq - 1 }),
      /^the checkpoint covers seq 2, not the event before it \(seq 3\)$/,
    ],
    [
      'another hash than the one before it',
      (data: CheckpointData) => ({ ...data, hash: 'cd'.repeat(32) }),
      /^the checkpoint hash is not the hash of the event before it \(prevHash\)$/,
    ],
    [
      'no signature',
      ({ signature: _signature, ...data }: CheckpointData) => data,
      /signature is not base64url/,
    ],
  ])('names the checkpoint seq for %s', async (_what, rewrite, reason) => {
    // The chain is rebuilt around the bad checkpoint, so only the checkpoint check can catch it.
    const text = await ndjsonOf(chainWithCheckpoint(rewrite));
    expect(await verifyExport(text, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 4,
      reason: expect.stringMatching(reason),
    });
  });

  it('refuses a checkpoint by a key that is neither pinned nor the manifest key', async () => {
    const other = { kid: 'other-key', privateKey: generateKeyPairSync('ed25519').privateKey };
    const text = await ndjsonOf(chainWithCheckpoint(undefined, other));
    expect(await verifyExport(text, { jwks: key.jwks })).toEqual({
      ok: false,
      seq: 4,
      reason: 'the checkpoint is signed by key "other-key", which is not among the pinned keys',
    });
    expect(await verifyExport(text)).toEqual({
      ok: false,
      seq: 4,
      reason: `the checkpoint is signed by key "other-key", not the manifest's: verify with the broker audit JWKS (--jwks)`,
    });
  });
});
