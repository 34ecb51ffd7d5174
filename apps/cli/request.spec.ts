import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parseDuration, parseRequestArgs, requestCommand, writeCredentialFile } from './request.js';

const BASE = ['--broker', 'https://broker.example.com', '--token-env', 'TOKEN', '--entitlement', 'db-deploy'];
const FULL = [...BASE, '--duration', '15m', '--task', 'deploy v1.2'];

describe('parseDuration', () => {
  it.each([
    ['900', 900],
    ['90s', 90],
    ['15m', 900],
    ['2h', 7200],
  ])('%s is %d s', (text, seconds) => expect(parseDuration(text)).toBe(seconds));
  it.each(['', '0', '-5m', '1.5h', '15 m', '1d', '15mm', '01m'])('refuses %j', (text) =>
    expect(parseDuration(text)).toBeUndefined(),
  );
});

describe('parseRequestArgs', () => {
  it('parses a full command line', () => {
    expect(
      parseRequestArgs([
        ...FULL,
        '--ticket',
        'CHG-1',
        '--wait',
        '--wait-timeout',
        '10m',
        '--out',
        'cred.json',
      ]),
    ).toEqual({
      broker: 'https://broker.example.com',
      token: { env: 'TOKEN' },
      entitlementId: 'db-deploy',
      durationSeconds: 900,
      task: 'deploy v1.2',
      ticket: 'CHG-1',
      wait: true,
      waitTimeoutSeconds: 600,
      out: 'cred.json',
    });
  });

  it('defaults the wait timeout to 30 minutes and reads a token file', () => {
    const options = parseRequestArgs([
      '--token-file',
      '/run/token',
      ...FULL.slice(0, 2),
      ...FULL.slice(4),
      '--wait',
    ]);
    expect(options).toMatchObject({ token: { file: '/run/token' }, waitTimeoutSeconds: 1800, wait: true });
  });

  it.each([
    [[...FULL, '--bogus'], /Unknown argument: --bogus/],
    [[...FULL, '--ticket'], /--ticket needs a value/],
    [[...FULL, '--task', 'again'], /given twice/],
    [['--broker', 'http://broker.example.com', ...FULL.slice(2)], /https/],
    [['--broker', 'not a url', ...FULL.slice(2)], /https/],
    [[...FULL, '--token-file', 'x'], /exactly one of --token-file and --token-env/],
    [FULL.filter((a) => a !== '--token-env' && a !== 'TOKEN'), /exactly one/],
    [[...BASE, '--duration', '15m'], /--task is required/],
    [[...BASE, '--duration', '15m', '--task', '   '], /--task is required/],
    [[...BASE, '--duration', 'soon', '--task', 'x'], /--duration/],
    [[...FULL.slice(0, 4), '--entitlement', 'DB!', '--duration', '1m', '--task', 'x'], /entitlement id/],
    [[...FULL, '--out', 'x.json'], /--out needs --wait/],
    [[...FULL, '--wait-timeout', '5m'], /--wait-timeout needs --wait/],
    [[...FULL, '--wait', '--wait-timeout', 'forever'], /--wait-timeout must be/],
  ])('refuses %j', (args, problem) => {
    const result = parseRequestArgs(args);
    expect(typeof result).toBe('string');
    expect(result).toMatch(problem);
  });

  it('accepts http only for localhost', () => {
    expect(parseRequestArgs(['--broker', 'http://127.0.0.1:3000/x', ...FULL.slice(2)])).toMatchObject({
      broker: 'http://127.0.0.1:3000',
    });
  });
});

describe('writeCredentialFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cli-request-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('creates the file with mode 0600 and the credential JSON', async () => {
    const file = path.join(dir, 'cred.json');
    await writeCredentialFile(file, { username: 'u', password: 'p' });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ username: 'u', password: 'p' });
  });

  it('refuses an existing file and leaves it unchanged', async () => {
    const file = path.join(dir, 'existing.json');
    await writeFile(file, 'keep me', { mode: 0o644 });
    await expect(writeCredentialFile(file, { secret: 's' })).rejects.toThrow(/exists already/);
    expect(await readFile(file, 'utf8')).toBe('keep me');
    expect((await stat(file)).mode & 0o777).toBe(0o644);
  });
});

/** A stand-in broker speaking the contract's routes, to test the command's flow and exit codes. */
describe('requestCommand against a stand-in broker', () => {
  let server: Server;
  let url: string;
  let dir: string;
  const seen: { method: string; url: string; auth: string | undefined; body: string }[] = [];
  let script: (req: IncomingMessage, body: string) => [number, unknown];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cli-request-run-'));
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body });
        const [status, payload] = script(req, body);
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(payload));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 10_000);
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  async function run(extra: string[], env: NodeJS.ProcessEnv = { TOKEN: 'secret.jwt.token' }) {
    seen.length = 0;
    const out: string[] = [];
    const err: string[] = [];
    const args = ['--broker', url, '--token-env', 'TOKEN', '--entitlement', 'db-deploy', '--duration', '10m'];
    const code = await requestCommand([...args, '--task', 'migrate', ...extra], {
      env,
      log: (line) => out.push(line),
      error: (line) => err.push(line),
      sleep: async () => {},
    });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  function approvedAfterOnePoll(): (req: IncomingMessage) => [number, unknown] {
    let polls = 0;
    return (req) => {
      if (req.method === 'POST' && req.url === '/api/requests') return [201, { id: 'r1', state: 'PENDING' }];
      if (req.url?.startsWith('/api/requests/r1/wait')) {
        polls += 1;
        return [
          200,
          { request: { id: 'r1', state: polls < 2 ? 'PENDING' : 'APPROVED' }, changed: polls >= 2 },
        ];
      }
      if (req.url === '/api/requests/r1/activate') {
        return [200, { request: { id: 'r1', state: 'ACTIVE' }, credential: { password: 'pw' } }];
      }
      return [404, { error: { code: 'NOT_FOUND', message: 'no' } }];
    };
  }

  it('files, waits, activates and prints the credential; the token is sent but never printed', async () => {
    script = approvedAfterOnePoll();
    const { code, out, err } = await run(['--wait', '--ticket', 'CHG-9']);
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual({ password: 'pw' });
    expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual([
      'POST /api/requests',
      'GET /api/requests/r1/wait?timeout=60',
      'GET /api/requests/r1/wait?timeout=60',
      'POST /api/requests/r1/activate',
    ]);
    expect(seen.every((r) => r.auth === 'Bearer secret.jwt.token')).toBe(true);
    expect(JSON.parse(seen[0]!.body)).toEqual({
      entitlementId: 'db-deploy',
      durationSeconds: 600,
      justification: 'migrate',
      ticket: 'CHG-9',
    });
    expect(`${out}${err}`).not.toContain('secret.jwt.token');
  });

  it('writes --out with mode 0600 and prints nothing secret', async () => {
    script = approvedAfterOnePoll();
    const file = path.join(dir, 'cred.json');
    const { code, out } = await run(['--wait', '--out', file]);
    expect(code).toBe(0);
    expect(out).toBe('');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ password: 'pw' });
  });

  it('exits 2 when denied, without activating', async () => {
    script = (req) =>
      req.method === 'POST' && req.url === '/api/requests'
        ? [201, { id: 'r2', state: 'PENDING' }]
        : [200, { request: { id: 'r2', state: 'DENIED' }, changed: true }];
    const { code, err } = await run(['--wait']);
    expect(code).toBe(2);
    expect(err).toMatch(/r2 is DENIED/);
    expect(seen.some((r) => r.url.endsWith('/activate'))).toBe(false);
  });

  it('exits 1 with the broker problem code and message on a 4xx', async () => {
    script = () => [
      422,
      { error: { code: 'DURATION_TOO_LONG', message: 'at most 15 minutes for workloads' } },
    ];
    const { code, err } = await run(['--wait']);
    expect(code).toBe(1);
    expect(err).toMatch(/422 DURATION_TOO_LONG: at most 15 minutes for workloads/);
    expect(seen).toHaveLength(1);
  });

  it('without --wait prints the filed request and exits 0', async () => {
    script = () => [201, { id: 'r3', state: 'PENDING' }];
    const { code, out } = await run([]);
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual({ id: 'r3', state: 'PENDING' });
  });

  it('exits 1 before any call when the token is missing', async () => {
    const { code, err } = await run(['--wait'], {});
    expect(code).toBe(1);
    expect(err).toMatch(/token is empty or missing/);
    expect(seen).toHaveLength(0);
  });

  it('retries a transient 503 while waiting', async () => {
    const next = approvedAfterOnePoll();
    let failed = false;
    script = (req) => {
      if (!failed && req.url?.includes('/wait')) {
        failed = true;
        return [503, { error: { code: 'SERVICE_UNAVAILABLE', message: 'db down' } }];
      }
      return next(req);
    };
    const { code, err } = await run(['--wait']);
    expect(code).toBe(0);
    expect(err).toMatch(/503 SERVICE_UNAVAILABLE: db down; retrying/);
  });
});
