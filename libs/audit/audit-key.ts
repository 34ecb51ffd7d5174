import { KeyObject, type webcrypto } from 'node:crypto';

/** The audit signing key as a key store hands it out: an Ed25519 private key, as node or WebCrypto holds it. */
export interface AuditSigningKey {
  kid: string;
  privateKey: KeyObject | webcrypto.CryptoKey;
}

/**
 * What libs/audit needs to sign checkpoints and export manifests: the current audit key. libs/keys'
 * SigningKeyStore is one; audit names only this shape, so it never imports the store (which appends to the
 * audit chain when it rotates). Loading may read PostgreSQL: call it before taking a lock, never inside one.
 */
export interface AuditKeySource {
  currentKey(purpose: 'audit'): Promise<AuditSigningKey>;
}

/** The key as a node KeyObject, which node:crypto's sign takes. */
export function auditPrivateKey(key: AuditSigningKey): KeyObject {
  return key.privateKey instanceof KeyObject ? key.privateKey : KeyObject.from(key.privateKey);
}
