import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from '@jest/globals';
import canonicalize from 'canonicalize';
import { createLocalJWKSet, decodeProtectedHeader, FlattenedSign, flattenedVerify, type JWK } from 'jose';
import { auditKey, buildScenario, memoryAuditSource, ORIGIN, RP_ID } from '../../test/support/audit-chain.js';
import { streamAuditExport } from './export.js';
import { manifestSigningInput, type ExportFormat, type ExportManifest } from './manifest.js';
import { verifyExport, verifyExportFile } from './verify.js';

// Manifests are JWS since issue 13; exports made before carry a raw Ed25519 signature, and still verify.
const LEGACY = new URL('../../test/fixtures/audit-legacy/', import.meta.url);
const key = auditKey();
const texts: Partial<Record<ExportFormat, string>> = {};

async function exportText(format: ExportFormat): Promise<string> {
  let text = '';
  const out = new Writable({
    write(chunk, _encoding, callback) {
      text += String(chunk);
      callback();
    },
  });
  const { chain } = buildScenario();
  await streamAuditExport({
    source: memoryAuditSource(chain.events).source,
    format,
    out,
    signManifest: key.signManifest,
    exporter: 'auditor-1',
    rpId: RP_ID,
    origins: [ORIGIN],
  });
  return text;
}

function ndjsonManifest(text: string): Record<string, unknown> {
  return JSON.parse(text.trimEnd().split('\n').at(-1)!) as Record<string, unknown>;
}

/** The NDJSON export with its manifest line replaced. */
function withManifest(text: string, manifest: Record<string, unknown>): string {
  const lines = text.trimEnd().split('\n');
  return [...lines.slice(0, -1), canonicalize(manifest)!, ''].join('\n');
}

beforeAll(async () => {
  for (const format of ['ndjson', 'csv', 'json'] as const) texts[format] = await exportText(format);
});

describe('the export manifest as a JWS', () => {
  it('is a flattened JWS, payload detached, that jose.flattenedVerify checks over JCS of the manifest', async () => {
    const { jws, ...unsigned } = ndjsonManifest(texts.ndjson!) as {
      jws: { protected: string; signature: string };
    };
    expect(unsigned).not.toHaveProperty('signature');
    expect(Object.keys(jws).sort()).toEqual(['protected', 'signature']);
    expect(decodeProtectedHeader(jws)).toEqual({ alg: 'EdDSA', kid: key.kid });
    // Verified with jose and canonicalize alone, as an auditor without this code would.
    // Detached payload (RFC 7515 appendix F): the reader supplies it, base64url-encoded as b64 JWS carry it.
    const payload = Buffer.from(canonicalize(unsigned)!, 'utf8').toString('base64url');
    const keys = createLocalJWKSet({ keys: key.jwks as JWK[] });
    const verified = await flattenedVerify({ ...jws, payload }, keys, { algorithms: ['EdDSA'] });
    expect(verified.protectedHeader?.kid).toBe(key.kid);
  });

  it.each(['ndjson', 'csv', 'json'] as const)('a %s export verifies pinned to the JWKS', async (format) => {
    await expect(verifyExport(texts[format]!, { jwks: key.jwks })).resolves.toMatchObject({
      ok: true,
      keyPinned: true,
      manifest: { format, kid: key.kid, jws: { protected: expect.any(String) } },
    });
  });

  it('refuses a manifest whose signed fields were edited, or whose JWS names another key', async () => {
    const manifest = ndjsonManifest(texts.ndjson!) as unknown as ExportManifest;
    const edited = withManifest(texts.ndjson!, { ...manifest, exporter: 'mallory' });
    await expect(verifyExport(edited, { jwks: key.jwks })).resolves.toMatchObject({
      ok: false,
      reason: `the manifest signature does not verify with pinned key ${JSON.stringify(key.kid)}`,
    });
    // Signed by the right key, but its protected header names another kid than the manifest it signs.
    const { jws: _jws, ...unsigned } = manifest;
    const misnamed = await new FlattenedSign(manifestSigningInput(unsigned))
      .setProtectedHeader({ alg: 'EdDSA', kid: 'someone-else' })
      .sign(key.privateKey);
    const jws = { protected: misnamed.protected, signature: misnamed.signature };
    await expect(
      verifyExport(withManifest(texts.ndjson!, { ...unsigned, jws }), { jwks: key.jwks }),
    ).resolves.toMatchObject({ ok: false, reason: expect.stringMatching(/signature does not verify/) });
  });

  it('refuses a manifest carrying both a JWS and a legacy signature', async () => {
    const manifest = ndjsonManifest(texts.ndjson!);
    const both = withManifest(texts.ndjson!, { ...manifest, signature: 'AAAA' });
    await expect(verifyExport(both, { jwks: key.jwks })).resolves.toMatchObject({
      ok: false,
      reason: 'the manifest carries both a JWS and a legacy signature',
    });
  });
});

describe('exports signed before the JWS manifest (legacy fixtures, made with the raw Ed25519 signer)', () => {
  let jwks: JWK[];

  beforeAll(async () => {
    jwks = (JSON.parse(await readFile(new URL('audit-jwks.json', LEGACY), 'utf8')) as { keys: JWK[] }).keys;
  });

  it.each(['ndjson', 'csv', 'json'] as const)('a legacy %s export still verifies', async (format) => {
    const result = await verifyExportFile(new URL(`export.${format}`, LEGACY).pathname, { jwks });
    expect(result).toMatchObject({ ok: true, keyPinned: true, manifest: { format, kid: 'audit-legacy-1' } });
    expect((result as { manifest: object }).manifest).not.toHaveProperty('jws');
  });

  it('a legacy export with an edited manifest does not', async () => {
    const text = await readFile(new URL('export.ndjson', LEGACY), 'utf8');
    const edited = withManifest(text, { ...ndjsonManifest(text), exporter: 'mallory' });
    await expect(verifyExport(edited, { jwks })).resolves.toMatchObject({
      ok: false,
      reason: 'the manifest signature does not verify with pinned key "audit-legacy-1"',
    });
  });
});
