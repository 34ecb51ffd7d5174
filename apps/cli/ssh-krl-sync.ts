import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { decodeKrl, sameRevocations, type DecodedKrl } from '../../libs/connectors/ssh-krl.js';

export const SSH_USAGE = `ssh krl-sync --url <broker>/api/ssh/krl --out <file> [--timeout <seconds>]
      Fetch the broker's KRL of revoked SSH certificates for sshd's RevokedKeys. <file> is replaced
      atomically (temp file + rename, mode 0644) only when the download is a whole KRL and its revocations
      differ from <file>'s. https:// only (http:// to localhost). Run it from a timer (docs/connectors.md).
      Exit 0: written or unchanged; 1: fetch failed or not a KRL (file untouched); 2: usage; 3: write failed.`;

const USAGE = 'usage: npm run cli -- ssh krl-sync --url <url> --out <file> [--timeout <seconds>]';
const DEFAULT_TIMEOUT_SECONDS = 10;
// A serial takes 8 bytes: a million revoked certificates still fit many times over.
const MAX_KRL_BYTES = 64 * 1024 * 1024;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Exit codes of `ssh krl-sync`, as documented in SSH_USAGE and docs/connectors.md. */
export const KrlSyncExit = { OK: 0, FETCH_FAILED: 1, USAGE: 2, WRITE_FAILED: 3 } as const;

interface KrlSyncOptions {
  url: URL;
  out: string;
  timeoutMs: number;
}

/** `ssh <subcommand>`: only `krl-sync` for now. Returns the exit code. */
export async function sshCommand(args: string[]): Promise<number> {
  const [subcommand, ...rest] = args;
  if (subcommand !== 'krl-sync') {
    console.error(USAGE);
    return KrlSyncExit.USAGE;
  }
  const options = parseOptions(rest);
  if (typeof options === 'string') {
    console.error(`${options}\n${USAGE}`);
    return KrlSyncExit.USAGE;
  }
  return krlSync(options);
}

function parseOptions(args: string[]): KrlSyncOptions | string {
  const given = new Map<string, string>();
  for (let index = 0; index < args.length; index += 2) {
    const [flag, value] = [args[index], args[index + 1]];
    if (!['--url', '--out', '--timeout'].includes(flag)) return `Unknown option ${flag}`;
    if (value === undefined || given.has(flag)) return `${flag} needs one value`;
    given.set(flag, value);
  }
  const [url, out] = [parseUrl(given.get('--url')), given.get('--out')];
  if (!url || !out) return '--url and --out are required';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) {
    // An unauthenticated KRL could be swapped for an empty one in transit, un-revoking every certificate.
    return '--url must be https:// (plain http:// only to localhost)';
  }
  const seconds = Number(given.get('--timeout') ?? DEFAULT_TIMEOUT_SECONDS);
  if (!Number.isInteger(seconds) || seconds <= 0) return '--timeout must be a positive whole number';
  return { url, out: path.resolve(out), timeoutMs: seconds * 1000 };
}

function parseUrl(text: string | undefined): URL | null {
  try {
    return text === undefined ? null : new URL(text);
  } catch {
    return null;
  }
}

/** Fetches, checks and, when the revocations changed, atomically replaces `out`. Returns the exit code. */
export async function krlSync(options: KrlSyncOptions): Promise<number> {
  let fetched: { bytes: Buffer; krl: DecodedKrl };
  try {
    const bytes = await download(options.url, options.timeoutMs);
    fetched = { bytes, krl: decodeKrl(bytes) };
  } catch (error) {
    console.error(
      `krl-sync: ${options.url.href}: ${(error as Error).message}; ${options.out} left as it was`,
    );
    return KrlSyncExit.FETCH_FAILED;
  }
  const current = await readKrl(options.out);
  if (current && sameRevocations(current, fetched.krl)) {
    console.log(`krl-sync: ${options.out} unchanged (${fetched.krl.sections.length} section(s))`);
    return KrlSyncExit.OK;
  }
  try {
    await writeAtomically(options.out, fetched.bytes);
  } catch (error) {
    console.error(`krl-sync: cannot write ${options.out}: ${(error as Error).message}`);
    return KrlSyncExit.WRITE_FAILED;
  }
  console.log(
    `krl-sync: wrote ${options.out} (KRL version ${fetched.krl.version}, ${fetched.bytes.length} bytes)`,
  );
  return KrlSyncExit.OK;
}

async function download(url: URL, timeoutMs: number): Promise<Buffer> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
  if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
  if (!response.body) throw new Error('empty answer');
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of response.body) {
    length += chunk.length;
    if (length > MAX_KRL_BYTES) throw new Error(`answer larger than ${MAX_KRL_BYTES} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** The KRL now at `file`, or null when there is none or it is not a KRL (then it is replaced). */
async function readKrl(file: string): Promise<DecodedKrl | null> {
  try {
    return decodeKrl(await readFile(file));
  } catch {
    return null;
  }
}

/** Temp file in the same directory, fsync, rename over `file`, fsync the directory: sshd never reads half a KRL. */
async function writeAtomically(file: string, bytes: Buffer): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(bytes);
      await handle.chmod(0o644); // whatever the umask: sshd may run the check as another user
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  const directory = await open(path.dirname(file), 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
