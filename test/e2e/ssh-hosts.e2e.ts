// Issue 13 point 4: an SSH public key is checked when the request is filed, before any approver spends a
// step-up on it; and `ssh krl-sync` carries the broker's KRL to a host's RevokedKeys file.
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { krlSync, KrlSyncExit, sshCommand } from '../../apps/cli/ssh-krl-sync.js';
import { policyDirFromFixture } from '../support/policy-fixture.js';
import { publicKeyLine } from '../support/ssh-keys.js';
import { clientAs, enrollAll, startStack, waitFor, type TestStack } from '../support/stack.js';

const SSH_KEYGEN = '/usr/bin/ssh-keygen';

function sshKeygen(...args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    execFile(SSH_KEYGEN, args, { timeout: 20_000 }, (error, stdout) => {
      if (error && typeof error.code !== 'number') reject(error);
      else resolve({ code: error ? Number(error.code) : 0, stdout });
    });
  });
}

/** Runs a CLI command with its console output captured: the exit code and what it printed. */
async function run(command: () => Promise<number>): Promise<{ code: number; printed: string }> {
  const lines: string[] = [];
  const capture = (...args: unknown[]) => void lines.push(args.join(' '));
  const log = jest.spyOn(console, 'log').mockImplementation(capture);
  const error = jest.spyOn(console, 'error').mockImplementation(capture);
  try {
    return { code: await command(), printed: lines.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

/** A local server answering every GET with `status` and `body`, for what a broker should never send. */
async function serve(status: number, body: Buffer | string): Promise<{ server: Server; url: URL }> {
  const server = createServer((_request, response) => response.writeHead(status).end(body));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/ssh/krl`) };
}

describe('SSH requests and host KRL sync against a real broker', () => {
  let stack: TestStack;
  let policyDir: string;
  let workDir: string;

  const file = (sshPublicKey: string | undefined, entitlementId = 'hosts-deploy') =>
    clientAs(stack, 'alice').post('/api/requests', {
      entitlementId,
      durationSeconds: 600,
      justification: 'deploy the fix',
      ...(sshPublicKey === undefined ? {} : { sshPublicKey }),
    });

  async function rowCounts(): Promise<{ requests: number; events: number }> {
    const { rows } = await stack.db.query<{ requests: number; events: number }>(
      `SELECT (SELECT count(*)::int FROM elevation_requests) AS requests,
              (SELECT count(*)::int FROM audit_events) AS events`,
    );
    return rows[0];
  }

  beforeAll(async () => {
    policyDir = await policyDirFromFixture('ssh', {});
    stack = await startStack({ policyDir });
    await enrollAll(stack, ['alice', 'bob']);
    workDir = await mkdtemp(path.join(tmpdir(), 'jit-ssh-hosts-'));
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
    if (workDir) await rm(workDir, { recursive: true, force: true });
  }, 60_000);

  it('refuses a missing, malformed, DSA or short RSA key at filing: 400 naming sshPublicKey, nothing written', async () => {
    const [algorithm, base64] = publicKeyLine('ed25519').split(' ');
    const blob = Buffer.from(base64, 'base64');
    const keys: Array<[string, string | undefined]> = [
      ['no key', undefined],
      ['truncated', `${algorithm} ${blob.subarray(0, -1).toString('base64')}`],
      ['trailing bytes', `${algorithm} ${Buffer.concat([blob, Buffer.from([0])]).toString('base64')}`],
      ['type mismatch', `ssh-rsa ${base64} me@laptop`],
      ['RSA 1024', publicKeyLine('rsa', 1024)],
      ['DSA', publicKeyLine('dsa')],
    ];
    const before = await rowCounts();
    const wrong: string[] = [];
    for (const [what, key] of keys) {
      const answer = await file(key);
      const fields = ((answer.body?.error?.details ?? []) as Array<{ field: string }>).map((d) => d.field);
      if (
        answer.status !== 400 ||
        answer.body.error.code !== 'VALIDATION_FAILED' ||
        fields[0] !== 'sshPublicKey'
      )
        wrong.push(`${what}: ${answer.status} ${JSON.stringify(answer.body)}`);
      else if (!String(answer.body.error.message).includes('sshPublicKey'))
        wrong.push(`${what}: message does not name sshPublicKey`);
    }
    expect(wrong).toEqual([]);
    expect(await rowCounts()).toEqual(before);
  });

  it('files a request with a good key, and asks no key of a jwt entitlement', async () => {
    expect((await file(publicKeyLine('rsa', 3072))).status).toBe(201);
    expect((await file(undefined, 'api-read')).status).toBe(201);
  });

  it('krl-sync writes the broker KRL that revokes a revoked certificate, then leaves it alone while unchanged', async () => {
    const keyFile = path.join(workDir, 'id_alice');
    expect((await sshKeygen('-q', '-t', 'ed25519', '-N', '', '-f', keyFile)).code).toBe(0);
    const created = await file((await readFile(`${keyFile}.pub`, 'utf8')).trim());
    expect(created.status).toBe(201);
    expect((await clientAs(stack, 'bob').decide(created.body.id, 'approve')).body.state).toBe('APPROVED');
    const activated = await clientAs(stack, 'alice').decide(created.body.id, 'activate');
    expect(activated.status).toBe(200);
    const certFile = `${keyFile}-cert.pub`;
    await writeFile(certFile, `${activated.body.credential.certificate}\n`);

    const out = path.join(workDir, 'revoked_keys.krl');
    const options = { url: new URL(`${stack.baseUrl}/api/ssh/krl`), out, timeoutMs: 10_000 };
    expect(await run(() => krlSync(options))).toEqual({
      code: KrlSyncExit.OK,
      printed: expect.stringContaining('wrote'),
    });
    expect((await sshKeygen('-Q', '-f', out, certFile)).code).toBe(0); // not revoked yet

    const alice = clientAs(stack, 'alice');
    const revoked = await alice.post(`/api/requests/${created.body.id}/revoke`, {
      reason: 'done early',
      stepUp: await alice.stepUp('revoke', created.body.id),
    });
    expect([200, 202]).toContain(revoked.status);
    await waitFor(
      async () => {
        expect((await run(() => krlSync(options))).code).toBe(KrlSyncExit.OK);
        return (await sshKeygen('-Q', '-f', out, certFile)).code === 1 ? true : undefined;
      },
      20_000,
      'the synced KRL to revoke the certificate',
    );
    expect((await stat(out)).mode & 0o777).toBe(0o644);

    // The broker re-dates its KRL on every GET: the same revocations under a later version leave the file be.
    const written = await stat(out);
    const redated = Buffer.from(await readFile(out));
    redated.writeBigUInt64BE(redated.readBigUInt64BE(12) + 1000n, 12); // the KRL version field
    const { server, url } = await serve(200, redated);
    try {
      expect(await run(() => krlSync({ ...options, url }))).toEqual({
        code: KrlSyncExit.OK,
        printed: expect.stringContaining('unchanged'),
      });
    } finally {
      server.close();
    }
    expect((await stat(out)).ino).toBe(written.ino);
    expect(await readFile(out)).not.toEqual(redated);
    expect((await readdir(workDir)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('krl-sync leaves the file untouched and exits 1 on an error answer or a body that is not a KRL', async () => {
    const out = path.join(workDir, 'revoked_keys.krl');
    const kept = await readFile(out);
    for (const [status, body] of [
      [502, 'Bad Gateway'],
      [200, '<html>captive portal</html>'],
      [200, kept.subarray(0, -3)],
    ] as const) {
      const { server, url } = await serve(status, body);
      try {
        expect(await run(() => krlSync({ url, out, timeoutMs: 10_000 }))).toEqual({
          code: KrlSyncExit.FETCH_FAILED,
          printed: expect.stringContaining('left as it was'),
        });
      } finally {
        server.close();
      }
      expect(await readFile(out)).toEqual(kept);
    }
  });

  it('krl-sync refuses plain http beyond localhost and bad arguments (exit 2), and says when it cannot write (exit 3)', async () => {
    const out = path.join(workDir, 'never.krl');
    const insecure = await run(() =>
      sshCommand(['krl-sync', '--url', 'http://broker.example/api/ssh/krl', '--out', out]),
    );
    expect(insecure).toEqual({ code: KrlSyncExit.USAGE, printed: expect.stringContaining('https://') });
    const noOut = await run(() => sshCommand(['krl-sync', '--url', `${stack.baseUrl}/api/ssh/krl`]));
    expect(noOut).toEqual({ code: KrlSyncExit.USAGE, printed: expect.stringContaining('--out') });
    expect((await run(() => sshCommand(['krl-pull']))).code).toBe(KrlSyncExit.USAGE);
    const unwritable = path.join(workDir, 'no-such-dir', 'revoked_keys.krl');
    const options = { url: new URL(`${stack.baseUrl}/api/ssh/krl`), out: unwritable, timeoutMs: 10_000 };
    expect(await run(() => krlSync(options))).toEqual({
      code: KrlSyncExit.WRITE_FAILED,
      printed: expect.stringContaining('cannot write'),
    });
    await expect(stat(out)).rejects.toThrow();
  });
});
