import { createHash } from 'node:crypto';
import { z } from 'zod';

/** A tlog-witness the worker submits checkpoints to (AUDIT_WITNESSES): its key name, submission prefix, vkey. */
export interface AuditWitnessConfig {
  name: string;
  url: string;
  vkey: string;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
const COSIGNATURE_KEY_TYPE = 0x04;

const witnessSchema = z
  .object({
    name: z.string().regex(/^[^\s+]+$/, { message: 'must be a key name (no white space, no "+")' }),
    url: z.url({ protocol: /^https?$/ }),
    vkey: z.string().regex(/^[^\s+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+={0,2}$/, {
      message: 'must be a vkey <name>+<key ID>+<base64 key>',
    }),
  })
  .strict();

/**
 * Why a witness's vkey cannot be its cosignature key, or null: a C2SP vkey of type 0x04 (Ed25519
 * cosignature/v1) named `name`, whose key ID matches (SHA-256(name ‖ "\n" ‖ type ‖ key)[:4]).
 */
function vkeyProblem(name: string, vkey: string): string | null {
  const first = vkey.indexOf('+');
  const second = vkey.indexOf('+', first + 1);
  const [keyName, keyId, material] = [
    vkey.slice(0, first),
    vkey.slice(first + 1, second),
    vkey.slice(second + 1),
  ];
  if (keyName !== name) return `its vkey is named ${keyName}, not ${name}`;
  const bytes = Buffer.from(material, 'base64');
  if (bytes.length !== 33 || bytes[0] !== COSIGNATURE_KEY_TYPE)
    return 'its vkey is not an Ed25519 cosignature/v1 key (type 0x04)';
  const expected = createHash('sha256').update(`${name}\n`).update(bytes).digest().subarray(0, 4);
  return expected.toString('hex') === keyId ? null : 'the key ID of its vkey does not match its key';
}

/**
 * AUDIT_WITNESSES: a JSON list of `{ "name", "url", "vkey" }` (empty or unset: no witnesses). Every problem is
 * one line naming the variable and the witness; plain http only to this machine.
 */
export function parseAuditWitnesses(value: string | undefined): {
  witnesses: AuditWitnessConfig[];
  problems: string[];
} {
  if (value === undefined || value.trim() === '') return { witnesses: [], problems: [] };
  let document: unknown;
  try {
    document = JSON.parse(value);
  } catch {
    return { witnesses: [], problems: ['AUDIT_WITNESSES must be JSON: [{"name", "url", "vkey"}, ...]'] };
  }
  const parsed = z.array(witnessSchema).safeParse(document);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `AUDIT_WITNESSES${issue.path.map((part) => `[${String(part)}]`).join('')} ${issue.message}`,
    );
    return { witnesses: [], problems };
  }
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const witness of parsed.data) {
    const where = `AUDIT_WITNESSES witness ${witness.name}`;
    if (seen.has(witness.name)) problems.push(`${where} is listed twice`);
    seen.add(witness.name);
    const url = new URL(witness.url);
    if (url.protocol === 'http:' && !LOOPBACK_HOSTS.has(url.hostname))
      problems.push(`${where}: plain http only to localhost; use https:// (${witness.url})`);
    const problem = vkeyProblem(witness.name, witness.vkey);
    if (problem) problems.push(`${where}: ${problem}`);
  }
  return { witnesses: problems.length === 0 ? parsed.data : [], problems };
}
