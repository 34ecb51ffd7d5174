import { createHash, createPublicKey, randomBytes, type JsonWebKey } from 'node:crypto';
import sshpk from 'sshpk';
import type { DataSource } from 'typeorm';
import { parseUserPublicKey } from '../domain/ssh-public-key.js';
import type { SigningKeyStore } from '../keys/signing-key-store.js';
import type { Connector, GrantSpec, Minted } from './connector.js';
import { encodeKrl, type KrlCertificateSection } from './ssh-krl.js';

/** How far back `valid after` reaches, so a host whose clock runs a little behind accepts a fresh certificate. */
export const SSH_CLOCK_SKEW_SECONDS = 60;
/** How long after a revoked certificate's own expiry the KRL keeps listing it, for hosts whose clock lags. */
export const KRL_RETENTION_AFTER_EXPIRY_SECONDS = 24 * 3600;
const CA_COMMENT = 'jit-broker-ssh-user-ca';
const KRL_COMMENT = 'jit-broker: revoked SSH user certificates';
// A login name or an AuthorizedPrincipalsFile label: no spaces, commas or wildcards.
const PRINCIPAL = /^[A-Za-z0-9._@+-]{1,64}$/;
// The standard user-certificate extensions (OpenSSH PROTOCOL.certkeys); anything else would be ignored by sshd.
const KNOWN_EXTENSIONS = new Set([
  'permit-X11-forwarding',
  'permit-agent-forwarding',
  'permit-port-forwarding',
  'permit-pty',
  'permit-user-rc',
]);
// Least privilege for a privileged session: a terminal, but no forwarding unless the entitlement asks for it.
const DEFAULT_EXTENSIONS = ['permit-pty'];
const EXTERNAL_REF =
  /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):([1-9][0-9]{0,18}):([1-9][0-9]{0,11})$/;
const SERIAL_MAX = (1n << 63n) - 1n;

/** What revoke() needs: the CA that signed, the serial, and when the certificate expires on its own. */
export interface SshCertificateRef {
  caKid: string;
  serial: bigint;
  notAfter: Date;
}

/** `<ca kid>:<serial>:<valid before, unix seconds>`. */
export function formatSshCertificateRef(ref: SshCertificateRef): string {
  return `${ref.caKid}:${ref.serial}:${Math.floor(ref.notAfter.getTime() / 1000)}`;
}

/** Inverse of formatSshCertificateRef; throws on anything this connector did not produce. */
export function parseSshCertificateRef(externalRef: string): SshCertificateRef {
  const match = EXTERNAL_REF.exec(externalRef);
  const serial = match ? BigInt(match[2]) : 0n;
  if (!match || serial > SERIAL_MAX) {
    throw new Error(`Refusing to revoke "${externalRef}": not a certificate reference this connector made`);
  }
  return { caKid: match[1], serial, notAfter: new Date(Number(match[3]) * 1000) };
}

/** The certificate's critical options and extensions from the entitlement's scope, checked. */
export function certificateOptions(grant: GrantSpec): {
  principals: string[];
  extensions: string[];
  criticalOptions: Array<{ name: string; value: string }>;
} {
  const { scope, entitlementId } = grant;
  const problem = (text: string) => new Error(`Entitlement ${entitlementId}: ${text}`);
  const principals = scope.principals;
  // An empty principal list would make the certificate valid for every user on the host.
  if (!Array.isArray(principals) || principals.length === 0) {
    throw problem('scope.principals must be a non-empty list of login names');
  }
  for (const principal of principals) {
    if (typeof principal !== 'string' || !PRINCIPAL.test(principal)) {
      throw problem(`scope.principals entry ${JSON.stringify(principal)} is not a login name`);
    }
  }
  const extensions = scope.extensions === undefined ? DEFAULT_EXTENSIONS : scope.extensions;
  if (!Array.isArray(extensions)) throw problem('scope.extensions must be a list');
  for (const extension of extensions) {
    if (typeof extension !== 'string' || !KNOWN_EXTENSIONS.has(extension)) {
      throw problem(
        `scope.extensions entry ${JSON.stringify(extension)} is not one of ${[...KNOWN_EXTENSIONS].join(', ')}`,
      );
    }
  }
  const criticalOptions: Array<{ name: string; value: string }> = [];
  if (scope.forceCommand !== undefined) {
    if (typeof scope.forceCommand !== 'string' || scope.forceCommand === '') {
      throw problem('scope.forceCommand must be a command line');
    }
    criticalOptions.push({ name: 'force-command', value: scope.forceCommand });
  }
  if (scope.sourceAddresses !== undefined) {
    const addresses = scope.sourceAddresses;
    if (
      !Array.isArray(addresses) ||
      addresses.length === 0 ||
      !addresses.every(
        (address) => typeof address === 'string' && /^[0-9A-Fa-f.:]+(\/\d{1,3})?$/.test(address),
      )
    ) {
      throw problem('scope.sourceAddresses must be a non-empty list of IP addresses or CIDR blocks');
    }
    criticalOptions.push({ name: 'source-address', value: addresses.join(',') });
  }
  return {
    principals: [...new Set(principals as string[])],
    // PROTOCOL.certkeys: options and extensions appear in lexical order of their names.
    extensions: [...new Set(extensions as string[])].sort(),
    criticalOptions: criticalOptions.sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
}

/**
 * Signs the requester's public key as an OpenSSH user certificate from the broker's own CA (DESIGN §7);
 * revoke records the serial, which the KRL served at /api/ssh/krl then lists.
 */
export class SshConnector implements Connector {
  readonly type = 'ssh';

  constructor(
    private readonly dataSource: DataSource,
    private readonly keys: SigningKeyStore,
    private readonly clockSkewSeconds = SSH_CLOCK_SKEW_SECONDS,
  ) {}

  async mint(grant: GrantSpec): Promise<Minted> {
    const userKey = parseUserPublicKey(grant.sshPublicKey);
    const { principals, extensions, criticalOptions } = certificateOptions(grant);
    // `valid before` is whole seconds: anything else would end the certificate before or after the grant.
    if (!Number.isInteger(grant.notAfter.getTime() / 1000))
      throw new Error('notAfter must be a whole second');
    if (grant.notAfter.getTime() <= Date.now())
      throw new Error(`Grant ${grant.grantId}: notAfter has passed`);
    const validAfter = new Date((Math.floor(Date.now() / 1000) - this.clockSkewSeconds) * 1000);

    const ca = await this.caPrivateKey();
    const serial = randomSerial();
    const certificate = new sshpk.Certificate({
      subjects: principals.map((principal) => sshpk.Identity.forUser(principal)),
      subjectKey: userKey,
      // OpenSSH certificates name their issuer by key only; sshpk wants an Identity, so a match-anything one.
      issuer: sshpk.Identity.forHost('**'),
      issuerKey: ca.key.toPublic(),
      // @types/sshpk types this as two finished signatures; sshpk wants the fields it signs (key id, options).
      signatures: {
        openssh: {
          // sshd logs the key id on every login: the grant and the requester, for the audit trail.
          keyId: `jit-grant:${grant.grantId}:${grant.subject}`,
          exts: [
            ...criticalOptions.map(({ name, value }) => ({ critical: true, name, data: sshString(value) })),
            ...extensions.map((name) => ({ critical: false, name, data: Buffer.alloc(0) })),
          ],
        },
      } as unknown as sshpk.CertificateOptions['signatures'],
      serial: uint64(serial),
      validFrom: validAfter,
      validUntil: grant.notAfter,
    });
    // Only the OpenSSH signature: Certificate.signWith would also try X.509, which a user certificate is not.
    const openssh = sshpk.Certificate.formats.openssh as unknown as {
      sign(certificate: sshpk.Certificate, key: sshpk.PrivateKey): boolean;
    };
    if (!openssh.sign(certificate, ca.key)) throw new Error('sshpk could not sign the SSH certificate');
    const certificateText = certificate.toString('openssh', { comment: `${grant.subject}@jit-broker` });

    return {
      credential: {
        type: 'ssh',
        notAfter: grant.notAfter.toISOString(),
        certificate: certificateText,
        serial: serial.toString(),
        principals,
        caPublicKey: publicKeyLine(ca.key.toPublic()),
      },
      externalRef: formatSshCertificateRef({ caKid: ca.kid, serial, notAfter: grant.notAfter }),
      fingerprint: createHash('sha256').update(certificateText).digest('base64url'),
      notAfter: grant.notAfter,
    };
  }

  /** Records the serial as revoked for its CA; the next KRL lists it. Revoking twice is a no-op. */
  async revoke(externalRef: string): Promise<void> {
    const { caKid, serial, notAfter } = parseSshCertificateRef(externalRef);
    await this.dataSource.query(
      `INSERT INTO ssh_revoked_serials (ca_kid, serial, not_after) VALUES ($1, $2, $3)
       ON CONFLICT (ca_kid, serial) DO NOTHING`,
      [caKid, serial.toString(), notAfter],
    );
  }

  /** Every CA public key that may have signed a live certificate, one OpenSSH line each (TrustedUserCAKeys). */
  async caPublicKeys(): Promise<string> {
    const jwks = await this.keys.publicJwks('ssh');
    return jwks.map((jwk) => `${publicKeyLine(jwkToSshKey(jwk))}\n`).join('');
  }

  /** The current binary KRL: every revoked serial whose certificate could still be accepted somewhere. */
  async revocationList(now = new Date()): Promise<Buffer> {
    const rows = (await this.dataSource.query(
      `SELECT r.ca_kid, r.serial::text AS serial, k.public_jwk
         FROM ssh_revoked_serials r JOIN signing_keys k ON k.kid = r.ca_kid
        WHERE r.not_after > $1::timestamptz - make_interval(secs => $2)
        ORDER BY r.ca_kid, r.serial`,
      [now, KRL_RETENTION_AFTER_EXPIRY_SECONDS],
    )) as Array<{ ca_kid: string; serial: string; public_jwk: Record<string, unknown> }>;
    const sections = new Map<string, KrlCertificateSection & { serials: bigint[] }>();
    for (const row of rows) {
      let section = sections.get(row.ca_kid);
      if (!section) {
        section = { caPublicKey: jwkToSshKey(row.public_jwk).toBuffer('rfc4253'), serials: [] };
        sections.set(row.ca_kid, section);
      }
      section.serials.push(BigInt(row.serial));
    }
    const generatedSeconds = Math.floor(now.getTime() / 1000);
    return encodeKrl({
      // Regenerated on every request, so the generation second is as good a version as any and never falls.
      version: BigInt(generatedSeconds),
      generatedAt: now,
      comment: KRL_COMMENT,
      certificates: [...sections.values()],
    });
  }

  private async caPrivateKey(): Promise<{ kid: string; key: sshpk.PrivateKey }> {
    const { kid, pkcs8 } = await this.keys.currentSshCaKey();
    return { kid, key: sshpk.parsePrivateKey(pkcs8, 'pkcs8') };
  }
}

/** A random serial in 1 … 2^63-1: unique per grant with overwhelming odds, and a positive PostgreSQL bigint. */
function randomSerial(): bigint {
  for (;;) {
    const serial = randomBytes(8).readBigUInt64BE() & SERIAL_MAX;
    // KRLs cannot list serial 0 (OpenSSH reserves it for "no serial").
    if (serial !== 0n) return serial;
  }
}

/** A serial as sshpk wants it: 8 bytes, big-endian. */
function uint64(value: bigint): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(value);
  return buffer;
}

/** An SSH `string` (uint32 length + bytes): how a critical option's value is wrapped. */
function sshString(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** The CA public key as stored (a JWK in signing_keys) in sshpk's form. */
function jwkToSshKey(jwk: object): sshpk.Key {
  const spki = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  return sshpk.parseKey(spki.export({ type: 'spki', format: 'pem' }), 'pem');
}

/** `ssh-ed25519 AAAA… jit-broker-ssh-user-ca`. */
function publicKeyLine(key: sshpk.Key): string {
  key.comment = CA_COMMENT;
  return key.toString('ssh');
}
