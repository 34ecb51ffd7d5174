import { readFile } from 'node:fs/promises';
import type { JsonWebKey } from 'node:crypto';
import type { ExportManifest } from '../../libs/audit/manifest.js';
import { matchExportToCheckpoint } from '../../libs/audit/export-checkpoint.js';
import { witnessedCheckpoint, witnessPolicy, type WitnessPolicy } from '../../libs/audit/witness-policy.js';
import { verifyExportFile } from '../../libs/audit/verify.js';
import { auditVerifyConsistency } from './audit-verify-consistency.js';

/** Where the command writes; console in the CLI, a collector in tests. */
export interface CommandOutput {
  log(line: string): void;
  error(line: string): void;
}

export const AUDIT_VERIFY_USAGE = `audit verify <file> [--jwks <file|url> | --trust-embedded-key]
      Verify an audit export (NDJSON, CSV or JSON) or a request bundle offline: the hash chain, every
      step-up assertion, that each event is the canonical JSON its hash covers, and the signed manifest.
      --jwks pins the broker's audit keys: a copy of https://<broker>/.well-known/audit-jwks.json saved
      when the key was published (best: the live one is served by the audited system), or that URL
      (https; plain http only to localhost; redirects refused). Without --jwks only the key the manifest
      embeds can be checked, and anyone who rewrote the file could have embedded their own: that is exit 3,
      unless --trust-embedded-key (then 0, with a warning).
      --checkpoint <file> (with --jwks): also check that an unfiltered NDJSON export reproduces a signed
      checkpoint of the audit log's Merkle tree taken earlier (GET /api/audit/checkpoint, saved): history
      rewritten and re-signed since then fails it.
      --witness <vkey> (repeatable, with --checkpoint) [--witness-threshold N]: also require that at least N
      (default: all) of these witnesses cosigned that checkpoint (tlog-cosignature lines in its note).
      Exit codes: 0 verified; 1 not verified (FAILED names the seq, line or record); 2 usage or read
      error; 3 consistent, but signed by a key you did not pin.`;

/** Exit code for a file that holds together but whose signing key was not pinned (not a success). */
export const EXIT_KEY_NOT_PINNED = 3;

/** `audit verify`: prints `OK: …` or `FAILED at seq N: reason`; returns the exit code. */
export async function auditVerify(
  args: readonly string[],
  output: CommandOutput = console,
  fetchJwks: (url: string) => Promise<unknown> = fetchJson,
): Promise<number> {
  if (args.includes('--consistency'))
    return auditVerifyConsistency(args, output, (source) => loadJwks(source, fetchJwks));
  const parsed = verifyArgs(args);
  if (parsed === null) {
    output.error(`Usage: npm run cli -- ${AUDIT_VERIFY_USAGE}`);
    return 2;
  }
  const { file, jwksSource, trustEmbeddedKey } = parsed;

  let jwks: JsonWebKey[] | undefined;
  if (jwksSource !== undefined) {
    try {
      jwks = await loadJwks(jwksSource, fetchJwks);
    } catch (error) {
      output.error((error as Error).message);
      return 2;
    }
  }

  let result: Awaited<ReturnType<typeof verifyExportFile>>;
  try {
    result = await verifyExportFile(file, { jwks, trustEmbeddedKey });
  } catch (error) {
    output.error(`Cannot read ${file}: ${(error as Error).message}`);
    return 2;
  }
  if ('unpinned' in result) {
    const { counts, manifest } = result;
    output.log(
      `NOT VERIFIED: consistent (${counts.events} events, ${counts.approvals} approvals, ` +
        `${counts.assertions} assertions), but ${result.reason}`,
    );
    output.log(manifestSummary(manifest));
    output.log(
      'Pin the key: --jwks https://<broker>/.well-known/audit-jwks.json (or a saved copy of it); ' +
        '--trust-embedded-key accepts the embedded key at your own risk',
    );
    return EXIT_KEY_NOT_PINNED;
  }
  if (!result.ok) {
    output.log(
      result.seq === null ? `FAILED: ${result.reason}` : `FAILED at seq ${result.seq}: ${result.reason}`,
    );
    return 1;
  }
  return reportVerified(parsed, result, jwks ?? [], output);
}

type Verified = Extract<Awaited<ReturnType<typeof verifyExportFile>>, { ok: true }>;

/** After a file verified: the checkpoint and witness checks asked for, its transparency and who signed it. */
async function reportVerified(
  parsed: VerifyArgs,
  result: Verified,
  jwks: JsonWebKey[],
  output: CommandOutput,
): Promise<number> {
  const { file, checkpointFile } = parsed;
  const { counts, manifest } = result;
  output.log(
    `OK: ${counts.events} events, ${counts.approvals} approvals, ${counts.assertions} assertions verified`,
  );
  output.log(manifestSummary(manifest));
  if (checkpointFile !== undefined) {
    const matched = await checkpointMatch(file, checkpointFile, jwks, result.format);
    output.log(
      matched.ok ? `Checkpoint: ${matched.line}` : `FAILED: checkpoint ${checkpointFile}: ${matched.reason}`,
    );
    if (!matched.ok) return 1;
  }
  const witnessed = await witnessCheck(parsed, output);
  if (witnessed !== 0) return witnessed;
  if (result.transparency) {
    const { events, checkpointSize } = result.transparency;
    output.log(
      `Transparency: all ${events} events proven in the signed checkpoint of the log at size ${checkpointSize}`,
    );
  } else if (result.format === 'bundle')
    output.log('Transparency: none (this bundle carries no inclusion proofs in a signed checkpoint)');
  output.log(
    result.keyPinned
      ? `Manifest signed by audit key ${manifest.kid} (pinned by --jwks${legacyNote(manifest)})`
      : `WARNING: signing key NOT pinned (--trust-embedded-key): the manifest was checked only against the key ` +
          `it embeds (kid ${manifest.kid}), which anyone who rewrote the file could have put there; ` +
          `pass --jwks with the broker's audit JWKS to prove who signed it`,
  );
  return 0;
}

interface VerifyArgs {
  file: string;
  jwksSource?: string;
  checkpointFile?: string;
  trustEmbeddedKey: boolean;
  witnessVkeys: string[];
  witnessThreshold?: number;
}

/** The arguments of `audit verify`, or null when they do not make a command (usage error). */
function verifyArgs(args: readonly string[]): VerifyArgs | null {
  let file: string | undefined;
  let jwksSource: string | undefined;
  let checkpointFile: string | undefined;
  let trustEmbeddedKey = false;
  const witnessVkeys: string[] = [];
  let witnessThreshold: number | undefined;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index];
    if (arg === '--jwks' && jwksSource === undefined && index + 1 < args.length) jwksSource = args[++index];
    else if (arg === '--checkpoint' && checkpointFile === undefined && index + 1 < args.length)
      checkpointFile = args[++index];
    else if (arg === '--trust-embedded-key' && !trustEmbeddedKey) trustEmbeddedKey = true;
    else if (arg === '--witness' && index + 1 < args.length) witnessVkeys.push(args[++index]);
    else if (
      arg === '--witness-threshold' &&
      witnessThreshold === undefined &&
      /^[1-9][0-9]*$/.test(args[index + 1] ?? '')
    )
      witnessThreshold = Number(args[++index]);
    else if (!arg.startsWith('--') && file === undefined) file = arg;
    else return null;
  }
  // Pinning and trusting the embedded key contradict each other: refuse rather than guess which was meant.
  // A checkpoint proves something only against pinned keys.
  if (
    file === undefined ||
    (trustEmbeddedKey && jwksSource !== undefined) ||
    (checkpointFile !== undefined && jwksSource === undefined) ||
    (witnessVkeys.length > 0 && checkpointFile === undefined) ||
    (witnessThreshold !== undefined && witnessVkeys.length === 0)
  ) {
    return null;
  }
  return { file, jwksSource, checkpointFile, trustEmbeddedKey, witnessVkeys, witnessThreshold };
}

/** --witness: 0 when the checkpoint has enough witness cosignatures (or none are asked for), else the exit code. */
async function witnessCheck(parsed: VerifyArgs, output: CommandOutput): Promise<number> {
  if (parsed.witnessVkeys.length === 0 || parsed.checkpointFile === undefined) return 0;
  let policy: WitnessPolicy;
  try {
    policy = witnessPolicy(parsed.witnessVkeys, parsed.witnessThreshold);
  } catch (error) {
    output.error(`Cannot use --witness: ${(error as Error).message}`);
    return 2;
  }
  const witnessed = witnessedCheckpoint(await readFile(parsed.checkpointFile, 'utf8'), policy);
  output.log(
    witnessed.ok
      ? `Witnesses: ${witnessed.line}`
      : `FAILED: checkpoint ${parsed.checkpointFile}: ${witnessed.reason}`,
  );
  return witnessed.ok ? 0 : 1;
}

/** Matches the export to a signed checkpoint; a checkpoint file that cannot be read is a failure too. */
async function checkpointMatch(
  file: string,
  checkpointFile: string,
  jwks: JsonWebKey[],
  format: string,
): Promise<{ ok: true; line: string } | { ok: false; reason: string }> {
  // A bundle's events are proven in the checkpoint it carries; --consistency ties that one to a saved one.
  if (format === 'bundle')
    return {
      ok: false,
      reason:
        'only an unfiltered NDJSON export is matched to a checkpoint; a bundle carries its own, which ' +
        `--consistency ${checkpointFile} ${file} --proof <saved proof> ties to this one`,
    };
  let text: string;
  try {
    text = await readFile(checkpointFile, 'utf8');
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
  const matched = await matchExportToCheckpoint(file, text, jwks).catch((error: unknown) => ({
    ok: false as const,
    reason: (error as Error).message,
  }));
  return matched.ok
    ? {
        ok: true,
        line: `the export reproduces the signed checkpoint of ${matched.origin} at size ${matched.size}`,
      }
    : matched;
}

/** Exports made before issue 13 carry a raw Ed25519 signature instead of a JWS: still verified, but named. */
function legacyNote(manifest: ExportManifest): string {
  return manifest.jws === undefined ? '; legacy raw Ed25519 signature, not a JWS' : '';
}

/** The manifest's range, chain head, exporter and filters, in one line. */
function manifestSummary(manifest: ExportManifest): string {
  const filters =
    Object.keys(manifest.filters).length === 0 ? 'none (whole chain)' : JSON.stringify(manifest.filters);
  return (
    `${manifest.format}: seq ${manifest.firstSeq ?? '-'}..${manifest.lastSeq ?? '-'} of a chain at seq ` +
    `${manifest.chainHead.seq}, exported ${manifest.exportedAt} by ${manifest.exporter}; filters: ${filters}`
  );
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

const URL_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
const THIS_MACHINE = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Why `source` cannot pin keys, or null (a file path, or a URL that can). A pin must come over a channel an
 * attacker on the network cannot rewrite: https, or plain http only to this machine.
 */
function jwksUrlProblem(source: string): string | null {
  if (!URL_SCHEME.test(source)) return null;
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    return 'not a URL; give a file or an https:// URL';
  }
  if (url.protocol === 'https:') return null;
  if (url.protocol === 'http:' && THIS_MACHINE.has(url.hostname)) return null;
  return url.protocol === 'http:'
    ? 'plain http can be rewritten on the way; use https:// (http only to localhost) or a saved JWKS file'
    : `${url.protocol} is not supported; give a file or an https:// URL`;
}

/** The keys --jwks pins, from a file or an https URL; throws with the line to print. */
async function loadJwks(source: string, fetchJwks: (url: string) => Promise<unknown>): Promise<JsonWebKey[]> {
  const urlProblem = jwksUrlProblem(source);
  if (urlProblem) throw new Error(`Cannot use --jwks ${source}: ${urlProblem}`);
  try {
    const document = URL_SCHEME.test(source)
      ? await fetchJwks(source)
      : (JSON.parse(await readFile(source, 'utf8')) as unknown);
    return keysOf(document);
  } catch (error) {
    throw new Error(`Cannot read --jwks ${source}: ${(error as Error).message}`, { cause: error });
  }
}

async function fetchJson(url: string): Promise<unknown> {
  // A redirect could lead anywhere, plain http included: the pin is the URL given, or nothing.
  const response = await fetch(url, { headers: { accept: 'application/json' }, redirect: 'error' }).catch(
    (error: unknown) => {
      const cause = (error as { cause?: { message?: string } }).cause?.message;
      throw new Error(cause ? `${(error as Error).message} (${cause})` : (error as Error).message);
    },
  );
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}
