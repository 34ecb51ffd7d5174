// C2SP formats for the audit log's Merkle tree heads (issue 22), on node:crypto alone so the offline verifier
// can import them:
// - tlog-checkpoint (c2sp.org/tlog-checkpoint): origin line, decimal tree size, base64 root hash, optional
//   extension lines, each ended by a newline;
// - signed-note (c2sp.org/signed-note): the text, a blank line, then one line per signature,
//   "— <key name> base64(key ID ‖ signature)", with Ed25519 keys (type 0x01) and vkeys
//   "<name>+<hex key ID>+base64(0x01 ‖ public key)";
// - tlog-cosignature (c2sp.org/tlog-cosignature) v1: a witness's Ed25519 signature (type 0x04) over
//   "cosignature/v1\ntime <unix seconds>\n" ‖ checkpoint body, sent as key ID ‖ u64 timestamp ‖ signature.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  sign,
  verify,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';

const EM_DASH_PREFIX = '\u2014 ';
const ED25519_NOTE = 0x01;
const ED25519_COSIGNATURE = 0x04;
/** DER prefix of a raw 32-byte Ed25519 public key (SubjectPublicKeyInfo) and of a seed (PKCS #8). */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A tree head as a checkpoint states it. */
export interface Checkpoint {
  origin: string;
  size: number;
  root: Buffer;
  extensions: string[];
}

/** A key that verifies note signatures: its name, key ID and Ed25519 public key. */
export interface NoteVerifier {
  name: string;
  keyId: Buffer;
  publicKey: KeyObject;
  /** 0x01: signed-note signatures; 0x04: tlog-cosignature/v1. */
  type: typeof ED25519_NOTE | typeof ED25519_COSIGNATURE;
}

/** A key name: non-empty, no Unicode white space, no '+' (signed-note §Format). */
function checkName(name: string): void {
  if (name.length === 0 || /[\s+]/u.test(name)) throw new Error(`"${name}" is not a valid key name`);
}

/** The raw 32 bytes of an Ed25519 public key. */
export function rawPublicKey(key: KeyObject): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
}

/** An Ed25519 public key object from its raw 32 bytes. */
export function ed25519PublicKey(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new Error('an Ed25519 public key is 32 bytes');
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** An Ed25519 private key object from its 32-byte seed. */
export function ed25519PrivateKey(seed: Buffer): KeyObject {
  if (seed.length !== 32) throw new Error('an Ed25519 seed is 32 bytes');
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** Key ID: SHA-256(name ‖ "\n" ‖ type ‖ public key)[:4]. */
export function keyIdOf(name: string, type: number, publicKey: KeyObject): Buffer {
  return createHash('sha256')
    .update(`${name}\n`)
    .update(Buffer.of(type))
    .update(rawPublicKey(publicKey))
    .digest()
    .subarray(0, 4);
}

/** The verifier of a name and Ed25519 key (type 0x01 for notes, 0x04 for cosignatures). */
export function noteVerifier(
  name: string,
  key: KeyObject,
  type: NoteVerifier['type'] = ED25519_NOTE,
): NoteVerifier {
  checkName(name);
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return { name, keyId: keyIdOf(name, type, publicKey), publicKey, type };
}

/** The vkey text of a verifier: "<name>+<hex key ID>+base64(type ‖ public key)". */
export function formatVkey(verifier: NoteVerifier): string {
  const material = Buffer.concat([Buffer.of(verifier.type), rawPublicKey(verifier.publicKey)]);
  return `${verifier.name}+${verifier.keyId.toString('hex')}+${material.toString('base64')}`;
}

/** Parses a vkey; refuses an unknown type or a key ID that does not match its name and key. */
export function parseVkey(vkey: string): NoteVerifier {
  const first = vkey.indexOf('+');
  const second = vkey.indexOf('+', first + 1);
  if (first <= 0 || second < 0) throw new Error('a vkey is <name>+<key ID>+<key>');
  const [name, id, material] = [vkey.slice(0, first), vkey.slice(first + 1, second), vkey.slice(second + 1)];
  checkName(name);
  if (!/^[0-9a-f]{8}$/.test(id) || !BASE64.test(material)) throw new Error('the vkey is malformed');
  const bytes = Buffer.from(material, 'base64');
  const type = bytes[0];
  if ((type !== ED25519_NOTE && type !== ED25519_COSIGNATURE) || bytes.length !== 33)
    throw new Error('only Ed25519 vkeys (type 0x01 or 0x04) are supported');
  const verifier = noteVerifier(name, ed25519PublicKey(bytes.subarray(1)), type);
  if (verifier.keyId.toString('hex') !== id)
    throw new Error(`the key ID of vkey ${name} does not match its key`);
  return verifier;
}

/** The text of a checkpoint (the note body). */
export function formatCheckpoint(checkpoint: Checkpoint): string {
  const { origin, size, root, extensions } = checkpoint;
  if (origin.length === 0 || /[\n\r]/.test(origin)) throw new Error('the origin must be one non-empty line');
  if (!Number.isSafeInteger(size) || size < 0) throw new Error('the size must be a whole number');
  if (root.length !== 32) throw new Error('the root hash is 32 bytes');
  const lines = [origin, String(size), root.toString('base64'), ...extensions];
  if (extensions.some((line) => line.length === 0 || /[\n\r]/.test(line)))
    throw new Error('an extension line must be one non-empty line');
  return `${lines.join('\n')}\n`;
}

/** Parses checkpoint text strictly (no leading zeros, canonical base64, 32-byte root). */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith('\n')) throw new Error('a checkpoint ends with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw new Error('a checkpoint has an origin, a size and a root hash');
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (origin.length === 0) throw new Error('the checkpoint origin is empty');
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText)))
    throw new Error(`the checkpoint size "${sizeText}" is not a decimal number`);
  const root = Buffer.from(rootText, 'base64');
  if (!BASE64.test(rootText) || root.length !== 32 || root.toString('base64') !== rootText)
    throw new Error('the checkpoint root is not a base64 SHA-256 hash');
  if (extensions.some((line) => line.length === 0))
    throw new Error('a checkpoint has an empty extension line');
  return { origin, size: Number(sizeText), root, extensions };
}

/** A signed note split into its text and signature lines (signed-note §Format). */
export interface NoteParts {
  text: string;
  signatures: Array<{ name: string; keyId: Buffer; signature: Buffer }>;
}

/** Splits a note; refuses one that is not text, blank line, signature lines. */
export function parseNote(note: string): NoteParts {
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/.test(note)) throw new Error('a note holds no control characters');
  const split = note.lastIndexOf('\n\n');
  if (split < 0 || !note.endsWith('\n'))
    throw new Error('a note is its text, a blank line and its signatures');
  const text = note.slice(0, split + 1);
  const signatures = note
    .slice(split + 2, -1)
    .split('\n')
    .map((line) => {
      const match = /^\u2014 ([^\s+]+) ([A-Za-z0-9+/]+={0,2})$/u.exec(line);
      if (!match) throw new Error(`"${line}" is not a signature line`);
      const blob = Buffer.from(match[2], 'base64');
      if (blob.length < 5) throw new Error(`the signature of ${match[1]} is too short`);
      return { name: match[1], keyId: blob.subarray(0, 4), signature: blob.subarray(4) };
    });
  return { text, signatures };
}

/** Signs `text` (which must end in a newline) as a note: text, blank line, the signature line. */
export function signNote(text: string, name: string, privateKey: KeyObject): string {
  if (!text.endsWith('\n')) throw new Error('a note text ends with a newline');
  const { keyId } = noteVerifier(name, privateKey);
  const signature = sign(null, Buffer.from(text, 'utf8'), privateKey);
  return `${text}\n${EM_DASH_PREFIX}${name} ${Buffer.concat([keyId, signature]).toString('base64')}\n`;
}

/** Adds signature lines (a witness's cosignatures) to a signed note, skipping ones it already has. */
export function addSignatureLines(note: string, lines: readonly string[]): string {
  const present = new Set(note.split('\n'));
  const added = lines.filter((line) => line.length > 0 && !present.has(line));
  return added.length === 0 ? note : `${note}${added.map((line) => `${line}\n`).join('')}`;
}

/** The message a tlog-cosignature/v1 signs: header, time line, checkpoint body. */
export function cosignedMessage(checkpointText: string, timestamp: number): Buffer {
  return Buffer.from(`cosignature/v1\ntime ${timestamp}\n${checkpointText}`, 'utf8');
}

/** A cosignature/v1 signature line over a checkpoint, by a witness key named `name`. */
export function cosignatureLine(
  checkpointText: string,
  name: string,
  privateKey: KeyObject,
  timestamp: number,
): string {
  const { keyId } = noteVerifier(name, privateKey, ED25519_COSIGNATURE);
  const time = Buffer.alloc(8);
  time.writeBigUInt64BE(BigInt(timestamp));
  const signature = sign(null, cosignedMessage(checkpointText, timestamp), privateKey);
  return `${EM_DASH_PREFIX}${name} ${Buffer.concat([keyId, time, signature]).toString('base64')}`;
}

/** What verifying a note found: the text, and the names of the known keys whose signature holds. */
export interface VerifiedNote {
  text: string;
  signedBy: string[];
  cosignedBy: Array<{ name: string; timestamp: number }>;
}

/**
 * Verifies a note against known keys: signatures by unknown keys are ignored (signed-note §Verification), a
 * signature by a known key that does not verify fails the whole note.
 */
export function verifyNote(note: string, verifiers: readonly NoteVerifier[]): VerifiedNote {
  const { text, signatures } = parseNote(note);
  const result: VerifiedNote = { text, signedBy: [], cosignedBy: [] };
  for (const line of signatures) {
    const known = verifiers.find((v) => v.name === line.name && v.keyId.equals(line.keyId));
    if (!known) continue;
    if (known.type === ED25519_NOTE) {
      if (!verify(null, Buffer.from(text, 'utf8'), known.publicKey, line.signature))
        throw new Error(`the signature of ${known.name} does not verify`);
      result.signedBy.push(known.name);
      continue;
    }
    if (line.signature.length !== 72) throw new Error(`the cosignature of ${known.name} is malformed`);
    const timestamp = Number(line.signature.readBigUInt64BE(0));
    if (!verify(null, cosignedMessage(text, timestamp), known.publicKey, line.signature.subarray(8)))
      throw new Error(`the cosignature of ${known.name} does not verify`);
    result.cosignedBy.push({ name: known.name, timestamp });
  }
  return result;
}

/**
 * The tree head of a signed checkpoint note, once one of the broker's Ed25519 audit keys (as published in its
 * JWKS) has signed it under the checkpoint's origin; throws with the reason otherwise.
 */
export function checkpointSignedBy(note: string, keys: readonly JsonWebKey[]): Checkpoint {
  const { origin } = parseCheckpoint(parseNote(note).text);
  const verifiers = keys
    .filter((key) => key.kty === 'OKP' && key.crv === 'Ed25519' && typeof key.x === 'string')
    .map((key) => noteVerifier(origin, ed25519PublicKey(Buffer.from(key.x as string, 'base64url'))));
  const verified = verifyNote(note, verifiers);
  if (!verified.signedBy.includes(origin))
    throw new Error(`the checkpoint of ${origin} is not signed by a pinned audit key`);
  return parseCheckpoint(verified.text);
}
