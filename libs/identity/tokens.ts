import { createHash, randomBytes } from 'node:crypto';

/** A bearer secret for a cookie or a link: 32 random bytes, base64url. Only its hash is ever stored. */
export function newSecretToken(): string {
  return randomBytes(32).toString('base64url');
}

/** sha256 of a bearer token, the form in which sessions and invites are stored and looked up. */
export function tokenHash(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
