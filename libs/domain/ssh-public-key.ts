import sshpk from 'sshpk';
import { DomainError, ErrorCode } from './errors.js';

// Pure parsing, shared by the filing rule (request-rules.ts) and the ssh connector at activation, so a key
// that would fail at activation is refused before any approver spends a step-up on it.

/** The smallest RSA modulus accepted for a user key (NIST SP 800-57: 2048 bits). */
export const MIN_RSA_BITS = 2048;
export const MAX_PUBLIC_KEY_LENGTH = 16 * 1024;
// The key types sshd accepts for user certificates that sshpk can carry; ssh-dss is obsolete, sk-* unsupported.
const USER_KEY_LINE =
  /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521) ([A-Za-z0-9+/]+={0,2})(?: [^\r\n]*)?$/;

/** VALIDATION_FAILED naming the field, in the envelope shape of the edge's validation pipe. */
function refuse(reason: string): DomainError {
  const message = `sshPublicKey ${reason}`;
  return new DomainError(ErrorCode.VALIDATION_FAILED, message, [
    { field: 'sshPublicKey', problems: [message] },
  ]);
}

/** The requester's OpenSSH public key, parsed; a missing, malformed, DSA or RSA<2048 key is VALIDATION_FAILED. */
export function parseUserPublicKey(text: string | null | undefined): sshpk.Key {
  if (typeof text !== 'string' || text.trim() === '') throw refuse('is required for an SSH entitlement');
  const line = text.trim();
  if (line.length > MAX_PUBLIC_KEY_LENGTH) throw refuse('is too long');
  const match = USER_KEY_LINE.exec(line);
  if (!match) {
    throw refuse(
      'must be one OpenSSH public key line: ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa, then base64',
    );
  }
  const [, algorithm, base64] = match;
  let key: sshpk.Key;
  try {
    key = sshpk.parseKey(`${algorithm} ${base64}`, 'ssh');
  } catch {
    throw refuse('is not a valid OpenSSH public key');
  }
  // sshpk tolerates trailing bytes and mangled padding; accept only a blob that re-encodes to itself.
  if (!key.toBuffer('rfc4253').equals(Buffer.from(base64, 'base64'))) {
    throw refuse('is not a valid OpenSSH public key');
  }
  if (key.type === 'rsa' && key.size < MIN_RSA_BITS) {
    throw refuse(`is an RSA key of ${key.size} bits; at least ${MIN_RSA_BITS} are required`);
  }
  return key;
}

/** Null when `text` is a public key the ssh connector will certify, else the refusal (returned, not thrown). */
export function checkUserPublicKey(text: string | null | undefined): DomainError | null {
  try {
    parseUserPublicKey(text);
    return null;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
}
