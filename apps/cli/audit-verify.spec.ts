import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { streamAuditExport } from '../../libs/audit/export.js';
import type { ExportFormat } from '../../libs/audit/manifest.js';
import {
  auditKey,
  buildScenario,
  memoryAuditSource,
  ORIGIN,
  RP_ID,
  SyntheticChain,
} from '../../test/support/audit-chain.js';
import { auditVerify } from './audit-verify.js';

const key = auditKey();
let dir: string;
const files: Partial<Record<ExportFormat, string>> = {};
let jwksFile: string;

async function run(args: string[], fetchJwks?: (url: string) => Promise<unknown>) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await auditVerify(
    args,
    { log: (line) => out.push(line), error: (line) => err.push(line) },
    fetchJwks,
  );
  return { code, out, err };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'audit-cli-'));
  const { chain } = buildScenario();
  for (const format of ['ndjson', 'csv', 'json'] as const) {
    let text = '';
    await streamAuditExport({
      source: memoryAuditSource(chain.events).source,
      format,
      out: new Writable({
        write(chunk, _encoding, callback) {
          text += String(chunk);
          callback();
        },
      }),
      signManifest: key.signManifest,
      exporter: 'auditor-1',
      rpId: RP_ID,
      origins: [ORIGIN],
    });
    files[format] = path.join(dir, `export.${format}`);
    await writeFile(files[format], text);
  }
  jwksFile = path.join(dir, 'jwks.json');
  await writeFile(jwksFile, JSON.stringify({ keys: key.jwks }));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('npm run cli -- audit verify', () => {
  it.each(['ndjson', 'csv', 'json'] as const)(
    'prints OK and exits 0 for a valid %s export pinned by --jwks',
    async (format) => {
      const { code, out } = await run([files[format] as string, '--jwks', jwksFile]);
      expect(code).toBe(0);
      expect(out[0]).toBe('OK: 9 events, 3 approvals, 4 assertions verified');
      expect(out.at(-1)).toBe(`Manifest signed by audit key ${key.kid} (pinned by --jwks)`);
    },
  );

  it.each(['ndjson', 'csv', 'json'] as const)(
    'verifies a %s export signed before JWS manifests (raw Ed25519 signature), and says so',
    async (format) => {
      const legacy = (name: string) => new URL(`../../test/fixtures/audit-legacy/${name}`, import.meta.url);
      const { code, out } = await run([
        legacy(`export.${format}`).pathname,
        '--jwks',
        legacy('audit-jwks.json').pathname,
      ]);
      expect(code).toBe(0);
      expect(out[0]).toBe('OK: 9 events, 3 approvals, 4 assertions verified');
      expect(out.at(-1)).toBe(
        'Manifest signed by audit key audit-legacy-1 (pinned by --jwks; legacy raw Ed25519 signature, not a JWS)',
      );
    },
  );

  it('takes --jwks from a URL', async () => {
    const fetched: string[] = [];
    const { code } = await run(
      ['--jwks', 'https://broker.example/.well-known/audit-jwks.json', files.ndjson as string],
      async (url) => {
        fetched.push(url);
        return { keys: key.jwks };
      },
    );
    expect(code).toBe(0);
    expect(fetched).toEqual(['https://broker.example/.well-known/audit-jwks.json']);
  });

  it.each([
    'http://broker.example/.well-known/audit-jwks.json',
    'http://10.0.0.5:3000/.well-known/audit-jwks.json',
    'ftp://broker.example/audit-jwks.json',
    'file:///etc/audit-jwks.json',
  ])(
    'refuses --jwks %s (plain http is a pin only on this machine) with exit 2, fetching nothing',
    async (url) => {
      const fetched: string[] = [];
      const { code, err } = await run(['--jwks', url, files.ndjson as string], async (fetchedUrl) => {
        fetched.push(fetchedUrl);
        return { keys: key.jwks };
      });
      expect({ code, fetched }).toEqual({ code: 2, fetched: [] });
      expect(err[0]).toMatch(/^Cannot use --jwks .*: .*https/);
    },
  );

  it.each([
    'http://localhost:3000/.well-known/audit-jwks.json',
    'http://127.0.0.1:3000/.well-known/audit-jwks.json',
    'http://[::1]:3000/.well-known/audit-jwks.json',
  ])('takes --jwks %s: plain http to this machine', async (url) => {
    const { code } = await run(['--jwks', url, files.ndjson as string], async () => ({ keys: key.jwks }));
    expect(code).toBe(0);
  });

  it('refuses a --jwks URL that redirects (exit 2), instead of following it', async () => {
    const server = createServer((request, response) => {
      if (request.url === '/jwks.json') {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ keys: key.jwks }));
      } else {
        response.writeHead(302, { location: '/jwks.json' });
        response.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      // The same server answers directly: the refusal is the redirect's, not the URL's.
      expect((await run(['--jwks', `http://127.0.0.1:${port}/jwks.json`, files.ndjson as string])).code).toBe(
        0,
      );
      const redirected = await run(['--jwks', `http://127.0.0.1:${port}/moved`, files.ndjson as string]);
      expect(redirected.code).toBe(2);
      expect(redirected.err[0]).toMatch(/^Cannot read --jwks .*redirect/i);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('exits 3 when the signing key is not pinned, and 0 with a warning under --trust-embedded-key', async () => {
    const unpinned = await run([files.ndjson as string]);
    expect(unpinned.code).toBe(3);
    expect(unpinned.out[0]).toMatch(
      /^NOT VERIFIED: consistent \(9 events, 3 approvals, 4 assertions\), but /,
    );
    const trusted = await run([files.ndjson as string, '--trust-embedded-key']);
    expect(trusted.code).toBe(0);
    expect(trusted.out[0]).toBe('OK: 9 events, 3 approvals, 4 assertions verified');
    expect(trusted.out.at(-1)).toMatch(/^WARNING: signing key NOT pinned/);
  });

  it("a forged export rebuilt and re-signed with the forger's embedded key: 3 unpinned, 0 trusted, 1 pinned", async () => {
    // The forger drops alice's deny (seq 7), rebuilds the chain and signs with a key of their own.
    const chain = new SyntheticChain();
    for (const event of buildScenario().chain.events) {
      if (event.seq === 7) continue;
      const { seq: _seq, hash: _hash, prevHash: _prevHash, ...input } = event;
      chain.append(input);
    }
    let text = '';
    await streamAuditExport({
      source: memoryAuditSource(chain.events).source,
      format: 'ndjson',
      out: new Writable({
        write(chunk, _encoding, callback) {
          text += String(chunk);
          callback();
        },
      }),
      signManifest: auditKey('mallory').signManifest,
      exporter: 'auditor-1',
      rpId: RP_ID,
      origins: [ORIGIN],
    });
    const forged = path.join(dir, 'forged.ndjson');
    await writeFile(forged, text);

    const unpinned = await run([forged]);
    expect(unpinned.code).toBe(3);
    expect(unpinned.out.join('\n')).toMatch(
      /signed by the key it embeds \(kid "mallory"\), which was not pinned/,
    );
    expect(unpinned.out.join('\n')).toMatch(/--jwks/);
    const trusted = await run([forged, '--trust-embedded-key']);
    expect(trusted.code).toBe(0);
    expect(trusted.out.at(-1)).toMatch(/^WARNING: signing key NOT pinned/);
    const pinned = await run([forged, '--jwks', jwksFile]);
    expect(pinned).toMatchObject({
      code: 1,
      out: ['FAILED: the manifest is signed by key "mallory", which is not among the pinned keys'],
    });
  });

  it('exits 1 naming the seq and line of a line with a duplicate key, even pinned', async () => {
    const { readFile } = await import('node:fs/promises');
    const lines = (await readFile(files.ndjson as string, 'utf8')).split('\n');
    lines[2] = lines[2].replace('"decision":"approve"', '"decision":"deny","decision":"approve"');
    const duplicate = path.join(dir, 'duplicate.ndjson');
    await writeFile(duplicate, lines.join('\n'));
    expect(await run([duplicate, '--jwks', jwksFile])).toMatchObject({
      code: 1,
      out: ['FAILED at seq 3: line 3 holds a duplicate key'],
    });
  });

  it('prints FAILED at seq N and exits 1 for a tampered file', async () => {
    const { readFile } = await import('node:fs/promises');
    const tampered = path.join(dir, 'tampered.ndjson');
    await writeFile(
      tampered,
      (await readFile(files.ndjson as string, 'utf8')).replace('CHG-7: fix', 'CHG-7: fiX'),
    );
    const { code, out } = await run([tampered, '--jwks', jwksFile]);
    expect(code).toBe(1);
    expect(out).toEqual(['FAILED at seq 2: hash does not match the event content']);
  });

  it('exits 1 when the manifest key is not among the pinned ones', async () => {
    const other = path.join(dir, 'other-jwks.json');
    await writeFile(other, JSON.stringify(auditKey().jwks));
    const { code, out } = await run([files.csv as string, '--jwks', other]);
    expect(code).toBe(1);
    expect(out[0]).toMatch(/^FAILED: the manifest is signed by key .* which is not among the pinned keys$/);
  });

  it.each([
    [[]],
    [['--jwks']],
    [['a.ndjson', 'b.ndjson']],
    [['a.ndjson', '--strict']],
    [['a.ndjson', '--jwks', 'jwks.json', '--trust-embedded-key']],
  ])('exits 2 on usage errors: %j', async (args) => {
    const { code, err } = await run(args);
    expect(code).toBe(2);
    expect(err[0]).toMatch(/^Usage: npm run cli -- audit verify <file>/);
  });

  it('exits 2 when the file or the JWKS cannot be read', async () => {
    expect((await run([path.join(dir, 'missing.ndjson')])).code).toBe(2);
    const notJwks = path.join(dir, 'not-jwks.json');
    await writeFile(notJwks, '"hello"');
    const result = await run([files.ndjson as string, '--jwks', notJwks]);
    expect(result.code).toBe(2);
    expect(result.err[0]).toMatch(/^Cannot read --jwks/);
  });
});
