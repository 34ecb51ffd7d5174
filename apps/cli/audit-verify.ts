import { readFile } from 'node:fs/promises';
import type { JsonWebKey } from 'node:crypto';
import { verifyExportFile } from '../../libs/audit/verify.js';

/** Where the command writes; console in the CLI, a collector in tests. */
export interface CommandOutput {
  log(line: string): void;
  error(line: string): void;
}

export const AUDIT_VERIFY_USAGE = `audit verify <file> [--jwks <file|url>]
      Verify an audit export (NDJSON, CSV or JSON) or a request bundle offline: the hash chain, every
      step-up assertion and the signed manifest. --jwks pins the broker's audit keys (a JWKS file or URL,
      e.g. the broker's published audit JWKS); without it the key embedded in the manifest is used and
      the output says so. Exits 0 when everything verifies, 1 when something does not, 2 on usage errors.`;

/** `audit verify`: prints `OK: …` or `FAILED at seq N: reason`; returns the exit code. */
export async function auditVerify(
  args: readonly string[],
  output: CommandOutput = console,
  fetchJwks: (url: string) => Promise<unknown> = fetchJson,
): Promise<number> {
  let file: string | undefined;
  let jwksSource: string | undefined;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index];
    if (arg === '--jwks' && jwksSource === undefined && index + 1 < args.length) jwksSource = args[++index];
    else if (!arg.startsWith('--') && file === undefined) file = arg;
    else {
      output.error(`Usage: npm run cli -- ${AUDIT_VERIFY_USAGE}`);
      return 2;
    }
  }
  if (file === undefined) {
    output.error(`Usage: npm run cli -- ${AUDIT_VERIFY_USAGE}`);
    return 2;
  }

  let jwks: JsonWebKey[] | undefined;
  if (jwksSource !== undefined) {
    try {
      const document = /^https?:\/\//.test(jwksSource)
        ? await fetchJwks(jwksSource)
        : (JSON.parse(await readFile(jwksSource, 'utf8')) as unknown);
      jwks = keysOf(document);
    } catch (error) {
      output.error(`Cannot read --jwks ${jwksSource}: ${(error as Error).message}`);
      return 2;
    }
  }

  let result: Awaited<ReturnType<typeof verifyExportFile>>;
  try {
    result = await verifyExportFile(file, { jwks });
  } catch (error) {
    output.error(`Cannot read ${file}: ${(error as Error).message}`);
    return 2;
  }
  if (!result.ok) {
    output.log(
      result.seq === null ? `FAILED: ${result.reason}` : `FAILED at seq ${result.seq}: ${result.reason}`,
    );
    return 1;
  }
  const { counts, manifest } = result;
  output.log(
    `OK: ${counts.events} events, ${counts.approvals} approvals, ${counts.assertions} assertions verified`,
  );
  const filters =
    Object.keys(manifest.filters).length === 0 ? 'none (whole chain)' : JSON.stringify(manifest.filters);
  output.log(
    `${manifest.format}: seq ${manifest.firstSeq ?? '-'}..${manifest.lastSeq ?? '-'} of a chain at seq ` +
      `${manifest.chainHead.seq}, exported ${manifest.exportedAt} by ${manifest.exporter}; filters: ${filters}`,
  );
  output.log(
    result.keyPinned
      ? `Manifest signed by audit key ${manifest.kid} (pinned by --jwks)`
      : `WARNING: signing key NOT pinned: the manifest was checked against the key it embeds (kid ${manifest.kid}); ` +
          `pass --jwks with the broker's audit JWKS to prove who signed it`,
  );
  return 0;
}

/** A JWKS `{ keys: [...] }`, a bare array of JWKs, or one JWK. */
function keysOf(document: unknown): JsonWebKey[] {
  const keys = Array.isArray(document)
    ? document
    : typeof document === 'object' &&
        document !== null &&
        Array.isArray((document as { keys?: unknown }).keys)
      ? (document as { keys: unknown[] }).keys
      : typeof document === 'object' && document !== null && 'kty' in document
        ? [document]
        : null;
  if (keys === null || keys.some((key) => typeof key !== 'object' || key === null)) {
    throw new Error('not a JWKS ({ "keys": [...] }), a list of JWKs or a JWK');
  }
  return keys as JsonWebKey[];
}

async function fetchJson(url: string): Promise<unknown> {
  const response = await fetch(url, { headers: { accept: 'application/json' } });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}
