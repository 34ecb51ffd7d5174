// Floors for the audit and approval benchmarks: what node:crypto alone does on this machine, one core, with
// nothing of the product in the loop (no JSON, no database, no key rebuilt per signature).
import { createHash, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { coseToPublicKey, decodeBase64Url } from '../../libs/audit/evidence-check.js';

/** One WebAuthn assertion as a verifier checks it: signature over authenticatorData ‖ sha256(clientDataJSON). */
export interface AssertionSample {
  key: KeyObject;
  authenticatorData: Buffer;
  clientDataJSON: Buffer;
  signature: Buffer;
}

/** A throughput: how many in how long. */
export interface Rate {
  count: number;
  seconds: number;
  perSecond: number;
}

function rate(count: number, startedAt: bigint): Rate {
  const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
  return { count, seconds, perSecond: count / seconds };
}

/** Verifies each sample once (keys already built): the signature work of a verifier, and only that. */
export function verifyAssertions(samples: readonly AssertionSample[]): Rate {
  const startedAt = process.hrtime.bigint();
  for (const sample of samples) {
    const signed = Buffer.concat([
      sample.authenticatorData,
      createHash('sha256').update(sample.clientDataJSON).digest(),
    ]);
    if (!verify('sha256', signed, sample.key, sample.signature)) {
      throw new Error('an assertion of the floor does not verify: the sample is broken');
    }
  }
  return rate(samples.length, startedAt);
}

/**
 * ES256 verifies per second on one core for `seconds`: P-256 keys, as the soft authenticator's passkeys, over
 * an assertion-shaped message (37 bytes of authenticator data ‖ a 32-byte client data hash).
 */
export function es256VerifyFloor(seconds: number): Rate {
  const samples: AssertionSample[] = [];
  for (let index = 0; index < 64; index++) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const authenticatorData = Buffer.alloc(37, index);
    const clientDataJSON = Buffer.from(`{"type":"webauthn.get","challenge":"${index}"}`);
    const signed = Buffer.concat([authenticatorData, createHash('sha256').update(clientDataJSON).digest()]);
    samples.push({
      key: publicKey,
      authenticatorData,
      clientDataJSON,
      signature: sign('sha256', signed, privateKey),
    });
  }
  verifyAssertions(samples); // warm up
  const deadline = Date.now() + seconds * 1000;
  let count = 0;
  let elapsed = 0;
  while (Date.now() < deadline) {
    const round = verifyAssertions(samples);
    count += round.count;
    elapsed += round.seconds;
  }
  return { count, seconds: elapsed, perSecond: count / elapsed };
}

/** sha256 over a file's bytes, streamed as a reader would (the page cache is warm after the export wrote it). */
export async function sha256File(file: string): Promise<Rate & { bytes: number; digest: string }> {
  const startedAt = process.hrtime.bigint();
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  const digest = hash.digest('hex');
  return { ...rate(bytes, startedAt), bytes, digest };
}

/**
 * The assertions an NDJSON export carries (every `data.evidence`), with their COSE keys built once per
 * credential. Not timed: this is the setup of the verify floor, not part of it.
 */
export async function assertionsOfNdjson(file: string): Promise<AssertionSample[]> {
  const keys = new Map<string, KeyObject>();
  const samples: AssertionSample[] = [];
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.includes('"evidence":')) continue;
    const evidence = (JSON.parse(line) as { data?: { evidence?: Record<string, string> } }).data?.evidence;
    if (evidence === undefined) continue;
    let key = keys.get(evidence.publicKey);
    if (key === undefined) {
      const built = coseToPublicKey(decodeBase64Url(evidence.publicKey) ?? Buffer.alloc(0));
      if (typeof built === 'string') throw new Error(`an assertion in ${file} has no usable key: ${built}`);
      key = built.key;
      keys.set(evidence.publicKey, key);
    }
    samples.push({
      key,
      authenticatorData: Buffer.from(evidence.authenticatorData, 'base64url'),
      clientDataJSON: Buffer.from(evidence.clientDataJSON, 'base64url'),
      signature: Buffer.from(evidence.signature, 'base64url'),
    });
  }
  return samples;
}
