import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { parseAuditWitnesses } from './audit-witnesses.js';
import { ConfigError, loadConfig } from './config.js';

/** A cosignature/v1 vkey (type 0x04) named `name`, built by hand: libs/config imports no other lib. */
function witnessVkey(name: string, type = 0x04): string {
  const raw = Buffer.from(
    generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x as string,
    'base64url',
  );
  const material = Buffer.concat([Buffer.of(type), raw]);
  const id = createHash('sha256').update(`${name}\n`).update(material).digest().subarray(0, 4);
  return `${name}+${id.toString('hex')}+${material.toString('base64')}`;
}

const W1 = {
  name: 'witness.example/w1',
  url: 'https://witness.example/w1',
  vkey: witnessVkey('witness.example/w1'),
};

describe('AUDIT_WITNESSES', () => {
  it('is empty when unset, and a list of witnesses when valid', () => {
    expect(parseAuditWitnesses(undefined)).toEqual({ witnesses: [], problems: [] });
    const local = { name: 'local/w', url: 'http://127.0.0.1:9000', vkey: witnessVkey('local/w') };
    expect(parseAuditWitnesses(JSON.stringify([W1, local]))).toEqual({
      witnesses: [W1, local],
      problems: [],
    });
  });

  it('names each problem: not JSON, missing fields, plain http, a wrong vkey', () => {
    expect(parseAuditWitnesses('w1=https://x').problems).toEqual([
      'AUDIT_WITNESSES must be JSON: [{"name", "url", "vkey"}, ...]',
    ]);
    expect(parseAuditWitnesses(JSON.stringify([{ name: 'w1', url: 'https://x' }])).problems).toEqual([
      expect.stringMatching(/^AUDIT_WITNESSES\[0\]\[vkey\] /),
    ]);
    const problems = (entries: object[]) => parseAuditWitnesses(JSON.stringify(entries)).problems;
    expect(problems([{ ...W1, url: 'http://witness.example/w1' }])).toEqual([
      expect.stringMatching(/witness\.example\/w1: plain http only to localhost/),
    ]);
    expect(problems([{ ...W1, vkey: witnessVkey('other') }])).toEqual([
      expect.stringMatching(/its vkey is named other, not witness\.example\/w1/),
    ]);
    expect(problems([{ ...W1, vkey: witnessVkey(W1.name, 0x01) }])).toEqual([
      expect.stringMatching(/not an Ed25519 cosignature\/v1 key/),
    ]);
    expect(problems([{ ...W1, vkey: W1.vkey.replace(/\+[0-9a-f]{8}\+/, '+00000000+') }])).toEqual([
      expect.stringMatching(/key ID of its vkey does not match/),
    ]);
    expect(problems([W1, W1])).toEqual([expect.stringMatching(/listed twice/)]);
  });

  it('stops the config load with the problem', () => {
    const env = {
      DATABASE_URL: 'postgres://u:p@localhost/db',
      REDIS_URL: 'redis://localhost:6379',
      BROKER_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'),
    };
    expect(loadConfig({ ...env, AUDIT_WITNESSES: JSON.stringify([W1]) }).auditWitnesses).toEqual([W1]);
    expect(() => loadConfig({ ...env, AUDIT_WITNESSES: '[{"name": "w"}]' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...env, AUDIT_WITNESSES: '[{"name": "w"}]' })).toThrow(
      /AUDIT_WITNESSES\[0\]\[url\]/,
    );
  });
});
