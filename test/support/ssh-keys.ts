import { generateKeyPairSync } from 'node:crypto';
import sshpk from 'sshpk';

/** An OpenSSH public key line for a fresh key pair made by Node (ed25519, ec P-256, rsa or dsa). */
export function publicKeyLine(
  type: 'ed25519' | 'ec' | 'rsa' | 'dsa',
  bits?: number,
  comment = 'carol@laptop',
): string {
  const { publicKey } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: bits ?? 2048 })
      : type === 'dsa'
        ? generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 })
        : type === 'ec'
          ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
          : generateKeyPairSync('ed25519');
  const key = sshpk.parseKey(publicKey.export({ type: 'spki', format: 'pem' }), 'pem');
  key.comment = comment;
  return key.toString('ssh');
}
