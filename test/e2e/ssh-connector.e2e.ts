import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { DataSource } from 'typeorm';
import { SshKrlController } from '../../apps/broker/tokens/ssh-krl.controller.js';
import type { GrantSpec, Minted } from '../../libs/connectors/connector.js';
import {
  formatSshCertificateRef,
  parseSshCertificateRef,
  SSH_CLOCK_SKEW_SECONDS,
  SshConnector,
} from '../../libs/connectors/ssh.connector.js';
import { createDataSource, runMigrations } from '../../libs/db/data-source.js';
import { SshConnector1764100000000 } from '../../libs/db/migrations/1764100000000-ssh-connector.js';
import { createDatabase, dropDatabase } from '../../libs/devstack/databases.js';
import { ErrorCode } from '../../libs/domain/errors.js';
import { ConnectorRegistry } from '../../libs/elevation/connector-registry.js';
import { SigningKeyStore } from '../../libs/keys/signing-key-store.js';

// Real PostgreSQL and the real OpenSSH tools: what matters is that ssh-keygen (and so sshd) accepts what we write.
const adminUrl = process.env.E2E_PG_ADMIN_URL;
const databaseName = `sshconn_${randomBytes(4).toString('hex')}`;
const SSH_KEYGEN = '/usr/bin/ssh-keygen';

let dataSource: DataSource;
let keys: SigningKeyStore;
let connector: SshConnector;
let masterKey: Buffer;
let workDir: string;
let app: INestApplication | undefined;

/** Runs ssh-keygen; resolves with its exit code and output instead of throwing on a non-zero exit. */
function sshKeygen(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // TZ=UTC: ssh-keygen -L prints validity in local time.
    execFile(
      SSH_KEYGEN,
      args,
      { env: { PATH: '/usr/bin:/bin', TZ: 'UTC' }, timeout: 20_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') reject(error);
        else resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}

/** A fresh key pair made by ssh-keygen itself; returns the path of the private key. */
async function newUserKey(name: string, ...typeArgs: string[]): Promise<string> {
  const file = path.join(workDir, name);
  const made = await sshKeygen('-q', ...typeArgs, '-N', '', '-C', `${name}@e2e`, '-f', file);
  expect(made.code).toBe(0);
  return file;
}

function grantSpec(
  publicKey: string,
  scope: Record<string, unknown> = { principals: ['deploy', 'root'] },
): GrantSpec {
  return {
    grantId: randomUUID(),
    requestId: randomUUID(),
    subject: 'carol',
    entitlementId: 'prod-ssh',
    scope,
    notAfter: new Date(Math.floor(Date.now() / 1000) * 1000 + 900_000),
    sshPublicKey: publicKey,
  };
}

/** Mints for the key at `keyFile` and writes the certificate where ssh finds it (`<key>-cert.pub`). */
async function mintFor(
  keyFile: string,
  scope?: Record<string, unknown>,
): Promise<{ grant: GrantSpec; minted: Minted; certFile: string }> {
  const grant = grantSpec(await readFile(`${keyFile}.pub`, 'utf8'), scope);
  const minted = await connector.mint(grant);
  const certFile = `${keyFile}-cert.pub`;
  await writeFile(certFile, `${String(minted.credential.certificate)}\n`);
  return { grant, minted, certFile };
}

async function writeKrl(name: string, krl: Buffer): Promise<string> {
  const file = path.join(workDir, name);
  await writeFile(file, krl);
  return file;
}

/** `ssh-keygen -Q`: exit 0 and "ok" when the certificate is not revoked, exit 1 and "REVOKED" when it is. */
async function revocationStatus(krlFile: string, certFile: string): Promise<'ok' | 'REVOKED'> {
  const result = await sshKeygen('-Q', '-f', krlFile, certFile);
  if (result.code === 0 && /: ok$/m.test(result.stdout)) return 'ok';
  if (result.code === 1 && /: REVOKED$/m.test(result.stdout)) return 'REVOKED';
  throw new Error(`ssh-keygen -Q failed (${result.code}): ${result.stdout}${result.stderr}`);
}

describe('SshConnector against real PostgreSQL and OpenSSH', () => {
  beforeAll(async () => {
    if (!adminUrl) throw new Error('Set E2E_PG_ADMIN_URL (from the e2e global setup)');
    const url = await createDatabase(adminUrl, databaseName);
    dataSource = createDataSource(url, { poolSize: 4, applicationName: 'e2e-ssh-connector' });
    await dataSource.initialize();
    await runMigrations(dataSource);
    masterKey = randomBytes(32);
    keys = new SigningKeyStore(dataSource, masterKey);
    connector = new SshConnector(dataSource, keys);
    workDir = await mkdtemp(path.join(tmpdir(), 'jit-ssh-e2e-'));
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    if (dataSource?.isInitialized) await dataSource.destroy();
    if (adminUrl) await dropDatabase(adminUrl, databaseName);
    if (workDir) await rm(workDir, { recursive: true, force: true });
  }, 60_000);

  it('signs an ssh-keygen key as a user certificate that ssh-keygen reads back', async () => {
    const keyFile = await newUserKey('id_carol', '-t', 'ed25519');
    const before = Math.floor(Date.now() / 1000);
    const { grant, minted, certFile } = await mintFor(keyFile);

    const listed = await sshKeygen('-L', '-f', certFile);
    expect(listed.code).toBe(0);
    const text = listed.stdout;
    expect(text).toContain('Type: ssh-ed25519-cert-v01@openssh.com user certificate');
    expect(text).toContain(`Key ID: "jit-grant:${grant.grantId}:carol"`);
    expect(text).toContain(`Serial: ${String(minted.credential.serial)}`);
    expect(text).toMatch(/Principals: *\n\s+deploy\n\s+root\n/);
    expect(text).toMatch(/Critical Options: \(none\)/);
    expect(text).toMatch(/Extensions: *\n\s+permit-pty\n/);
    const valid = /Valid: from (\S+) to (\S+)/.exec(text);
    expect(valid?.[2]).toBe(grant.notAfter.toISOString().slice(0, 19));
    const validFrom = Date.parse(`${valid?.[1]}Z`) / 1000;
    expect(validFrom).toBeGreaterThanOrEqual(before - SSH_CLOCK_SKEW_SECONDS);
    expect(validFrom).toBeLessThanOrEqual(before + 1 - SSH_CLOCK_SKEW_SECONDS);

    // The certificate is for the requester's own key, and signed by the CA the credential names.
    const userFingerprint = (await sshKeygen('-l', '-f', `${keyFile}.pub`)).stdout.split(' ')[1];
    expect(text).toContain(`Public key: ED25519-CERT ${userFingerprint}`);
    const caFile = path.join(workDir, 'ca.pub');
    await writeFile(caFile, `${String(minted.credential.caPublicKey)}\n`);
    const caFingerprint = (await sshKeygen('-l', '-f', caFile)).stdout.split(' ')[1];
    expect(text).toContain(`Signing CA: ED25519 ${caFingerprint}`);
    expect(await connector.caPublicKeys()).toBe(`${String(minted.credential.caPublicKey)}\n`);

    expect(minted.credential).toMatchObject({
      type: 'ssh',
      notAfter: grant.notAfter.toISOString(),
      principals: ['deploy', 'root'],
    });
    expect(minted.notAfter).toEqual(grant.notAfter);
  });

  it('puts scoped critical options and extensions in the certificate', async () => {
    const keyFile = await newUserKey('id_scoped', '-t', 'ecdsa', '-b', '256');
    const { certFile } = await mintFor(keyFile, {
      principals: ['deploy'],
      extensions: ['permit-port-forwarding', 'permit-pty'],
      forceCommand: '/usr/bin/uptime',
      sourceAddresses: ['10.0.0.0/8', '192.0.2.7'],
    });
    const { code, stdout } = await sshKeygen('-L', '-f', certFile);
    expect(code).toBe(0);
    expect(stdout).toMatch(
      /Critical Options: *\n\s+force-command \/usr\/bin\/uptime\n\s+source-address 10\.0\.0\.0\/8,192\.0\.2\.7\n/,
    );
    expect(stdout).toMatch(/Extensions: *\n\s+permit-port-forwarding\n\s+permit-pty\n/);
  });

  it('is signed for real: ssh-keygen refuses a certificate whose signed bytes were altered', async () => {
    const keyFile = await newUserKey('id_tampered', '-t', 'ed25519');
    const { minted } = await mintFor(keyFile);
    const [type, base64] = String(minted.credential.certificate).split(' ');
    const blob = Buffer.from(base64, 'base64');
    // The last 8 bytes of the 8-byte `valid before` field sit just before the extensions: move it a year on.
    const parsedNotAfter = BigInt(Math.floor(minted.notAfter.getTime() / 1000));
    const field = Buffer.alloc(8);
    field.writeBigUInt64BE(parsedNotAfter);
    const at = blob.indexOf(field);
    expect(at).toBeGreaterThan(0);
    blob.writeBigUInt64BE(parsedNotAfter + 365n * 86_400n, at);
    const forged = path.join(workDir, 'forged-cert.pub');
    await writeFile(forged, `${type} ${blob.toString('base64')}\n`);
    const listed = await sshKeygen('-L', '-f', forged);
    expect(listed.code).not.toBe(0);
    expect(listed.stderr).toContain('incorrect signature');
  });

  it('signs RSA and ECDSA keys made by ssh-keygen too', async () => {
    for (const [name, typeArgs, certType] of [
      ['id_rsa', ['-t', 'rsa', '-b', '3072'], 'ssh-rsa-cert-v01@openssh.com'],
      ['id_ecdsa', ['-t', 'ecdsa', '-b', '521'], 'ecdsa-sha2-nistp521-cert-v01@openssh.com'],
    ] as const) {
      const { certFile } = await mintFor(await newUserKey(name, ...typeArgs));
      const listed = await sshKeygen('-L', '-f', certFile);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain(`Type: ${certType} user certificate`);
    }
  });

  it('refuses an RSA key under 2048 bits made by ssh-keygen, with VALIDATION_FAILED', async () => {
    const keyFile = await newUserKey('id_weak', '-t', 'rsa', '-b', '1024');
    const grant = grantSpec(await readFile(`${keyFile}.pub`, 'utf8'));
    await expect(connector.mint(grant)).rejects.toMatchObject({ code: ErrorCode.VALIDATION_FAILED });
    await expect(connector.mint({ ...grant, sshPublicKey: undefined })).rejects.toMatchObject({
      code: ErrorCode.VALIDATION_FAILED,
    });
  });

  it('revokes by serial: the KRL lists it, ssh-keygen -Q says REVOKED, other certificates stay ok', async () => {
    const revokedKey = await newUserKey('id_revoked', '-t', 'ed25519');
    const keptKey = await newUserKey('id_kept', '-t', 'ed25519');
    const revoked = await mintFor(revokedKey);
    const kept = await mintFor(keptKey);

    const krlBefore = await writeKrl('before.krl', await connector.revocationList());
    expect(await revocationStatus(krlBefore, revoked.certFile)).toBe('ok');

    await connector.revoke(revoked.minted.externalRef);
    // Idempotent: a retried revocation (or two workers racing) changes nothing.
    await connector.revoke(revoked.minted.externalRef);
    await Promise.all([
      connector.revoke(revoked.minted.externalRef),
      connector.revoke(revoked.minted.externalRef),
    ]);

    const krl = await writeKrl('after.krl', await connector.revocationList());
    expect(await revocationStatus(krl, revoked.certFile)).toBe('REVOKED');
    expect(await revocationStatus(krl, kept.certFile)).toBe('ok');

    const listing = await sshKeygen('-Q', '-l', '-f', krl);
    expect(listing.code).toBe(0);
    expect(listing.stdout).toContain(`serial: ${String(revoked.minted.credential.serial)}`);
    expect(listing.stdout).not.toContain(`serial: ${String(kept.minted.credential.serial)}`);
    const { serial, caKid } = parseSshCertificateRef(revoked.minted.externalRef);
    const rows = await dataSource.query(
      'SELECT count(*)::int AS n FROM ssh_revoked_serials WHERE ca_kid = $1 AND serial = $2',
      [caKid, serial.toString()],
    );
    expect(rows[0].n).toBe(1);
  });

  it('drops a serial from the KRL a day after its certificate expired on its own', async () => {
    const { caKid } = parseSshCertificateRef(
      (await mintFor(await newUserKey('id_probe', '-t', 'ed25519'))).minted.externalRef,
    );
    const now = new Date();
    const longExpired = { caKid, serial: 1_000_001n, notAfter: new Date(now.getTime() - 2 * 86_400_000) };
    const recentlyExpired = { caKid, serial: 1_000_002n, notAfter: new Date(now.getTime() - 3_600_000) };
    await connector.revoke(formatSshCertificateRef(longExpired));
    await connector.revoke(formatSshCertificateRef(recentlyExpired));
    const krl = await writeKrl('retention.krl', await connector.revocationList(now));
    const listing = await sshKeygen('-Q', '-l', '-f', krl);
    expect(listing.stdout).toContain('serial: 1000002');
    expect(listing.stdout).not.toContain('serial: 1000001');
  });

  it('refuses to revoke a reference it did not make, or one naming an unknown CA', async () => {
    await expect(connector.revoke('jit_0123456789abcdef01234567_89abcdef')).rejects.toThrow(
      'not a certificate reference',
    );
    const unknownCa = formatSshCertificateRef({ caKid: randomUUID(), serial: 5n, notAfter: new Date() });
    await expect(connector.revoke(unknownCa)).rejects.toThrow();
  });

  it('keeps one CA, sealed at rest, across broker processes', async () => {
    const secondBroker = new SshConnector(dataSource, new SigningKeyStore(dataSource, masterKey));
    expect(await secondBroker.caPublicKeys()).toBe(await connector.caPublicKeys());
    const rows = (await dataSource.query(
      "SELECT alg, private_key_encrypted FROM signing_keys WHERE purpose = 'ssh'",
    )) as Array<{ alg: string; private_key_encrypted: Buffer }>;
    expect(rows).toHaveLength(1);
    expect(rows[0].alg).toBe('EdDSA');
    expect(rows[0].private_key_encrypted.toString('latin1')).not.toContain('PRIVATE KEY');
    // Another master key cannot open it.
    await expect(new SigningKeyStore(dataSource, randomBytes(32)).currentSshCaKey()).rejects.toThrow();
  });

  it('serves the KRL and the CA key over HTTP (SshKrlController)', async () => {
    @Module({
      controllers: [SshKrlController],
      providers: [{ provide: ConnectorRegistry, useValue: { ssh: connector } }],
    })
    class SshKrlTestModule {}
    app = await NestFactory.create(SshKrlTestModule, { logger: false, abortOnError: false });
    await app.listen(0, '127.0.0.1');
    const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');

    const revoked = await mintFor(await newUserKey('id_http', '-t', 'ed25519'));
    await connector.revoke(revoked.minted.externalRef);

    const krlResponse = await fetch(`${base}/api/ssh/krl`);
    expect(krlResponse.status).toBe(200);
    expect(krlResponse.headers.get('content-type')).toBe('application/octet-stream');
    const krl = await writeKrl('http.krl', Buffer.from(await krlResponse.arrayBuffer()));
    expect(await revocationStatus(krl, revoked.certFile)).toBe('REVOKED');

    const caResponse = await fetch(`${base}/api/ssh/ca.pub`);
    expect(caResponse.status).toBe(200);
    expect(caResponse.headers.get('content-type')).toMatch(/^text\/plain/);
    const caText = await caResponse.text();
    expect(caText).toBe(await connector.caPublicKeys());
    // What an sshd host would put in TrustedUserCAKeys is a key ssh-keygen reads.
    const caFile = path.join(workDir, 'trusted_user_ca_keys');
    await writeFile(caFile, caText);
    expect((await sshKeygen('-l', '-f', caFile)).code).toBe(0);
  });
});

describe('migration 1764100000000-ssh-connector', () => {
  const name = `sshmig_${randomBytes(4).toString('hex')}`;
  let migrated: DataSource | undefined;

  afterAll(async () => {
    if (migrated?.isInitialized) await migrated.destroy();
    if (adminUrl) await dropDatabase(adminUrl, name);
  }, 60_000);

  it('reverts and re-applies', async () => {
    if (!adminUrl) throw new Error('Set E2E_PG_ADMIN_URL (from the e2e global setup)');
    migrated = createDataSource(await createDatabase(adminUrl, name), { poolSize: 2 });
    await migrated.initialize();
    await runMigrations(migrated);
    await new SigningKeyStore(migrated, randomBytes(32)).currentSshCaKey();
    const runner = migrated.createQueryRunner();
    try {
      const migration = new SshConnector1764100000000();
      await migration.down(runner);
      expect(await runner.hasTable('ssh_revoked_serials')).toBe(false);
      await expect(
        runner.query(
          `INSERT INTO signing_keys (kid, purpose, alg, public_jwk, private_key_encrypted)
           VALUES ('x', 'ssh', 'EdDSA', '{}', '\\x00')`,
        ),
      ).rejects.toThrow('signing_keys_purpose_check');
      await migration.up(runner);
      expect(await runner.hasTable('ssh_revoked_serials')).toBe(true);
    } finally {
      await runner.release();
    }
  });
});
