import { describe, expect, it } from '@jest/globals';
import {
  auditKey,
  exportedText,
  buildScenario,
  ORIGIN,
  RP_ID,
  type SyntheticInput,
} from '../../test/support/audit-chain.js';
import { AssertionPool } from './assertion-pool.js';
import { assertionSignatureHolds, parseStepUpEvidence, prepareStepUpAssertion } from './evidence-check.js';
import type { ExportFormat } from './manifest.js';
import { verifyExport, type VerifyOptions } from './verify.js';

const key = auditKey();
/** Inline, and on threads with every assertion its own batch (so the threads start at the first one). */
const SERIAL: VerifyOptions = { jwks: key.jwks, threads: 0 };
const THREADED: VerifyOptions = { jwks: key.jwks, threads: 2, threadBatch: 1 };

/** The scenario, with the evidence signature of the events at `badSeqs` broken before hashing. */
function chainWithBadSignatures(badSeqs: number[]) {
  return buildScenario((input: SyntheticInput, index) => {
    if (!badSeqs.includes(index + 1)) return input;
    const evidence = input.data?.evidence as Record<string, string>;
    const signature = Buffer.from(evidence.signature, 'base64url');
    signature[signature.length - 3] ^= 0x01;
    const broken = { ...evidence, signature: signature.toString('base64url') };
    return { ...input, data: { ...input.data, evidence: broken } };
  });
}

function exportText(badSeqs: number[], format: ExportFormat): Promise<string> {
  return exportedText(chainWithBadSignatures(badSeqs).chain.events, format, key.signManifest);
}

/** Changes one character of the data of the NDJSON line of `seq` (so its hash no longer holds). */
function breakHashAt(text: string, seq: number): string {
  const lines = text.split('\n');
  lines[seq - 1] = lines[seq - 1].replace('"data":{"', '"data":{"X');
  return lines.join('\n');
}

describe('verifyExport with assertion signatures on worker threads', () => {
  it.each(['ndjson', 'csv', 'json'] as const)(
    '%s: the same answer as inline, intact and with two bad signatures (the earlier one is named)',
    async (format) => {
      const intact = await exportText([], format);
      const serialOk = await verifyExport(intact, SERIAL);
      expect(serialOk).toMatchObject({ ok: true, counts: { assertions: 4 } });
      expect(await verifyExport(intact, THREADED)).toEqual(serialOk);

      const forged = await exportText([3, 5], format);
      const serial = await verifyExport(forged, SERIAL);
      expect(serial).toEqual({
        ok: false,
        seq: 3,
        reason: 'assertion signature does not verify with the ES256 public key',
      });
      expect(await verifyExport(forged, THREADED)).toEqual(serial);
      expect(await verifyExport(forged, { ...THREADED, threadBatch: 3 })).toEqual(serial);
    },
  );

  it('a bad signature before a broken hash: the signature, though the hash is found first', async () => {
    const forged = breakHashAt(await exportText([3], 'ndjson'), 7);
    const serial = await verifyExport(forged, SERIAL);
    expect(serial).toEqual({
      ok: false,
      seq: 3,
      reason: 'assertion signature does not verify with the ES256 public key',
    });
    expect(await verifyExport(forged, THREADED)).toEqual(serial);
  });

  it('a broken hash before a bad signature: the hash', async () => {
    const forged = breakHashAt(await exportText([5], 'ndjson'), 4);
    const serial = await verifyExport(forged, SERIAL);
    expect(serial).toEqual({ ok: false, seq: 4, reason: 'hash does not match the event content' });
    expect(await verifyExport(forged, THREADED)).toEqual(serial);
  });

  it('a bad signature in a file missing its last event: the signature, checked before the totals', async () => {
    const lines = (await exportText([5], 'ndjson')).split('\n');
    lines.splice(-3, 1);
    const serial = await verifyExport(lines.join('\n'), SERIAL);
    expect(serial).toMatchObject({ ok: false, seq: 5 });
    expect(await verifyExport(lines.join('\n'), THREADED)).toEqual(serial);
  });
});

describe('AssertionPool', () => {
  it('answers on its threads what the inline check answers, in order', async () => {
    const { chain } = chainWithBadSignatures([5]);
    const prepared = chain.events
      .filter((event) => event.data.evidence !== undefined)
      .map((event) => {
        const evidence = parseStepUpEvidence(event.data.evidence);
        if (typeof evidence === 'string') throw new Error(evidence);
        const assertion = prepareStepUpAssertion(evidence, { rpId: RP_ID, origins: [ORIGIN] });
        if (typeof assertion === 'string') throw new Error(assertion);
        return assertion;
      });
    const batch = [...prepared, ...prepared];
    const pool = new AssertionPool(2);
    try {
      const answers = await Promise.all([pool.check(batch), pool.check(prepared)]);
      expect(answers[0]).toEqual(batch.map(assertionSignatureHolds));
      expect(answers[1]).toEqual(prepared.map(assertionSignatureHolds));
      expect(answers[1].filter((holds) => !holds)).toHaveLength(1);
      expect(pool.fallbacks).toBe(0);
    } finally {
      await pool.close();
    }
  });
});
