import type { JsonWebKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { checkpointsConsistent, exportsConsistent } from '../../libs/audit/consistency-check.js';
import { verifyExportFile } from '../../libs/audit/verify.js';
import type { CommandOutput } from './audit-verify.js';

export const AUDIT_VERIFY_CONSISTENCY_USAGE = `audit verify --jwks <file|url> --consistency <older> <newer> [--proof <file>]
      Prove that the audit log only grew between two views of it. With --proof: <older> and <newer> are
      signed checkpoints you saved (GET /api/audit/checkpoint, the note itself, or a request bundle, which
      carries one) and <file> the answer of GET /api/audit/proofs/consistency?from=<older size>&to=<newer
      size>: both must be signed by a pinned audit key under the same origin, in size order, and the proof
      must lead to both roots. Without --proof: <older> and <newer> are unfiltered NDJSON exports; each is
      verified as above, then the Merkle root of the newer's first events must be the older's (a changed
      old event fails, naming its seq). Exit codes: 0 proven; 1 not (FAILED says why); 2 usage or read
      error.`;

interface ConsistencyArgs {
  jwksSource: string;
  older: string;
  newer: string;
  proofFile?: string;
}

/** The arguments of `audit verify --consistency`, or null when they do not make that command. */
function consistencyArgs(args: readonly string[]): ConsistencyArgs | null {
  let jwksSource: string | undefined;
  let pair: [string, string] | undefined;
  let proofFile: string | undefined;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index];
    if (arg === '--jwks' && jwksSource === undefined && index + 1 < args.length) jwksSource = args[++index];
    else if (arg === '--proof' && proofFile === undefined && index + 1 < args.length)
      proofFile = args[++index];
    else if (arg === '--consistency' && pair === undefined && index + 2 < args.length) {
      pair = [args[index + 1], args[index + 2]];
      index += 2;
    } else return null;
  }
  // Consistency proves something only against pinned keys.
  if (jwksSource === undefined || pair === undefined || pair.some((file) => file.startsWith('--')))
    return null;
  return { jwksSource, older: pair[0], newer: pair[1], proofFile };
}

/**
 * `audit verify --consistency`: two signed checkpoints and a proof, or two exports. `loadKeys` reads --jwks
 * as the main command does (its error message is the line to print). Returns the exit code.
 */
export async function auditVerifyConsistency(
  args: readonly string[],
  output: CommandOutput,
  loadKeys: (source: string) => Promise<JsonWebKey[]>,
): Promise<number> {
  const parsed = consistencyArgs(args);
  if (parsed === null) {
    output.error(`Usage: npm run cli -- ${AUDIT_VERIFY_CONSISTENCY_USAGE}`);
    return 2;
  }
  let keys: JsonWebKey[];
  try {
    keys = await loadKeys(parsed.jwksSource);
  } catch (error) {
    output.error((error as Error).message);
    return 2;
  }
  return parsed.proofFile === undefined
    ? exportsExtend(parsed.older, parsed.newer, keys, output)
    : checkpointsExtend(parsed.older, parsed.newer, parsed.proofFile, keys, output);
}

async function checkpointsExtend(
  older: string,
  newer: string,
  proofFile: string,
  keys: JsonWebKey[],
  output: CommandOutput,
): Promise<number> {
  const texts: string[] = [];
  for (const file of [older, newer, proofFile]) {
    try {
      texts.push(await readFile(file, 'utf8'));
    } catch (error) {
      output.error(`Cannot read ${file}: ${(error as Error).message}`);
      return 2;
    }
  }
  const result = checkpointsConsistent(texts[0], texts[1], texts[2], keys);
  if (!result.ok) {
    output.log(`FAILED: ${result.reason}`);
    return 1;
  }
  const [from, to] = [result.older, result.newer].map(
    (head) => `size ${head.size} (root ${head.root.toString('base64')})`,
  );
  output.log(
    `OK: the log ${result.origin} at ${to} extends its checkpoint at ${from}: consistency proven, ` +
      `both checkpoints signed by a pinned audit key`,
  );
  return 0;
}

async function exportsExtend(
  older: string,
  newer: string,
  keys: JsonWebKey[],
  output: CommandOutput,
): Promise<number> {
  try {
    for (const file of [older, newer]) {
      const verified = await verifyExportFile(file, { jwks: keys });
      if (!verified.ok || verified.format !== 'ndjson') {
        const reason = verified.ok
          ? `a ${verified.format} export: only NDJSON exports are compared`
          : verified.seq === null
            ? verified.reason
            : `at seq ${verified.seq}: ${verified.reason}`;
        output.log(`FAILED: ${file}: ${reason}`);
        return 1;
      }
      output.log(
        `Verified: ${file} (${verified.counts.events} events, signed by pinned audit key ${verified.manifest.kid})`,
      );
    }
    const result = await exportsConsistent(older, newer);
    if (!result.ok) {
      output.log(
        result.seq === null ? `FAILED: ${result.reason}` : `FAILED at seq ${result.seq}: ${result.reason}`,
      );
      return 1;
    }
    const root = (head: { root: Buffer }) => head.root.toString('base64');
    output.log(
      `OK: ${newer} extends ${older}: its first ${result.older.size} events give the older export's Merkle ` +
        `root ${root(result.older)}; its own root at size ${result.newer.size} is ${root(result.newer)}`,
    );
    return 0;
  } catch (error) {
    output.error(`Cannot read: ${(error as Error).message}`);
    return 2;
  }
}
