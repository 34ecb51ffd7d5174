import { open, readFile } from 'node:fs/promises';
import { workloadTokenFromEnv } from '../../libs/config/workload-token.js';

export const REQUEST_USAGE = `request --broker <url> (--token-file <path> | --token-env <NAME>) --entitlement <id>
          --duration <15m> --task "<why>" [--ticket <T>] [--wait [--wait-timeout <30m>]] [--out <file>]
      For a workload (CI job, deploy bot): files an elevation request with the workload's OIDC token, and with
      --wait long-polls until it is decided, activates it and prints the credential JSON (or writes it to
      <file>, created with mode 0600; an existing file is refused). The token is read from the file (again
      before each call, so a refresher may rewrite it) or the environment variable; it is never printed.
      Exit codes: 0 activated (or filed, without --wait), 2 denied/expired/cancelled/not decided in time,
      1 error.`;

const DURATION = /^([1-9][0-9]{0,6})(s|m|h)?$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const;
const MAX_POLL_SECONDS = 60;
const MAX_TRANSIENT_FAILURES = 5;

export interface RequestOptions {
  broker: string;
  token: { file: string } | { env: string };
  entitlementId: string;
  durationSeconds: number;
  task: string;
  ticket?: string;
  wait: boolean;
  waitTimeoutSeconds: number;
  out?: string;
}

export interface RequestDeps {
  fetch: typeof fetch;
  /** Where `--token-env` looks; the process environment unless a test gives one. */
  env?: NodeJS.ProcessEnv;
  log: (line: string) => void;
  error: (line: string) => void;
  sleep: (ms: number) => Promise<void>;
}

/** `15m`, `1h`, `90s` or a whole number of seconds; undefined when not a positive duration. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * UNIT_SECONDS[(match[2] ?? 's') as keyof typeof UNIT_SECONDS];
}

const VALUE_FLAGS = new Set([
  '--broker',
  '--token-file',
  '--token-env',
  '--entitlement',
  '--duration',
  '--task',
  '--ticket',
  '--wait-timeout',
  '--out',
]);

function collectFlags(args: string[]): Map<string, string> | string {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i += 1) {
    const flag = args[i]!;
    if (flag === '--wait') {
      flags.set(flag, 'true');
      continue;
    }
    if (!VALUE_FLAGS.has(flag)) return `Unknown argument: ${flag}`;
    const value = args[i + 1];
    if (value === undefined || VALUE_FLAGS.has(value) || value === '--wait') return `${flag} needs a value`;
    if (flags.has(flag)) return `${flag} given twice`;
    flags.set(flag, value);
    i += 1;
  }
  return flags;
}

function brokerUrl(text: string | undefined): string | undefined {
  if (text === undefined || !URL.canParse(text)) return undefined;
  const url = new URL(text);
  const local = url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) return undefined;
  return url.origin;
}

/** Parses `request` arguments; a string is the problem to print (exit 1). */
export function parseRequestArgs(args: string[]): RequestOptions | string {
  const flags = collectFlags(args);
  if (typeof flags === 'string') return flags;
  const broker = brokerUrl(flags.get('--broker'));
  if (!broker) return '--broker must be an https URL (http only for localhost)';
  const file = flags.get('--token-file');
  const env = flags.get('--token-env');
  if ((file === undefined) === (env === undefined)) return 'Give exactly one of --token-file and --token-env';
  const entitlementId = flags.get('--entitlement');
  if (!entitlementId || !/^[a-z0-9][a-z0-9-]{0,63}$/.test(entitlementId))
    return '--entitlement must be an entitlement id';
  const durationSeconds = parseDuration(flags.get('--duration') ?? '');
  if (durationSeconds === undefined) return '--duration must be like 15m, 1h or 900 (seconds)';
  const task = flags.get('--task')?.trim();
  if (!task) return '--task is required: what the workload is about to do (shown to approvers)';
  const wait = flags.has('--wait');
  const timeoutText = flags.get('--wait-timeout');
  if (timeoutText !== undefined && !wait) return '--wait-timeout needs --wait';
  const waitTimeoutSeconds = timeoutText === undefined ? 1800 : parseDuration(timeoutText);
  if (waitTimeoutSeconds === undefined) return '--wait-timeout must be like 30m';
  if (flags.has('--out') && !wait) return '--out needs --wait (the credential exists only once activated)';
  return {
    broker,
    token: file !== undefined ? { file } : { env: env! },
    entitlementId,
    durationSeconds,
    task,
    ...(flags.has('--ticket') ? { ticket: flags.get('--ticket') } : {}),
    wait,
    waitTimeoutSeconds,
    ...(flags.has('--out') ? { out: flags.get('--out') } : {}),
  };
}

/** Thrown for any failure that ends the command with exit code 1; the message goes to stderr. */
export class RequestCommandError extends Error {}

async function readToken(options: RequestOptions, env: NodeJS.ProcessEnv | undefined): Promise<string> {
  let token: string | undefined;
  if ('file' in options.token) {
    try {
      token = (await readFile(options.token.file, 'utf8')).trim();
    } catch (error) {
      throw new RequestCommandError(
        `Cannot read the token file: ${(error as NodeJS.ErrnoException).code ?? error}`,
      );
    }
  } else {
    token = workloadTokenFromEnv(options.token.env, env)?.trim();
  }
  if (!token) throw new RequestCommandError('The workload token is empty or missing');
  return token;
}

/** Writes the credential to a new file, mode 0600 from creation (O_CREAT|O_EXCL): an existing file is refused. */
export async function writeCredentialFile(file: string, credential: unknown): Promise<void> {
  let handle;
  try {
    handle = await open(file, 'wx', 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new RequestCommandError(`${file} exists already; not overwriting it`);
    throw new RequestCommandError(`Cannot create ${file}: ${code ?? error}`);
  }
  try {
    await handle.writeFile(`${JSON.stringify(credential, null, 2)}\n`, 'utf8');
  } finally {
    await handle.close();
  }
}

interface RequestView {
  id: string;
  state: string;
}

class Broker {
  constructor(
    private readonly options: RequestOptions,
    private readonly deps: RequestDeps,
  ) {}

  /** One call; the broker's `{ error: { code, message } }` becomes a RequestCommandError. */
  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const token = await readToken(this.options, this.deps.env);
    let response: Response;
    try {
      response = await this.deps.fetch(`${this.options.broker}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (error) {
      throw new TransientError(`Cannot reach the broker: ${(error as Error).message}`);
    }
    const payload = (await response.json().catch(() => null)) as {
      error?: { code?: string; message?: string };
    } | null;
    if (response.ok && payload) return payload as T;
    const problem = payload?.error;
    const text = `${method} ${path}: ${response.status} ${problem?.code ?? 'ERROR'}: ${problem?.message ?? response.statusText}`;
    throw response.status >= 500 || response.status === 429
      ? new TransientError(text)
      : new RequestCommandError(text);
  }
}

class TransientError extends RequestCommandError {}

const DECIDED_AGAINST = new Set(['DENIED', 'EXPIRED', 'CANCELLED', 'ENDED', 'REVOKED']);

/** Long-polls /wait until the request leaves PENDING or the deadline passes; transient failures retried. */
async function waitForDecision(broker: Broker, options: RequestOptions, deps: RequestDeps, id: string) {
  const deadline = Date.now() + options.waitTimeoutSeconds * 1000;
  let failures = 0;
  let view: RequestView = { id, state: 'PENDING' };
  while (view.state === 'PENDING') {
    const remaining = Math.ceil((deadline - Date.now()) / 1000);
    if (remaining <= 0) return view;
    const timeout = Math.min(MAX_POLL_SECONDS, remaining);
    try {
      view = (
        await broker.call<{ request: RequestView }>('GET', `/api/requests/${id}/wait?timeout=${timeout}`)
      ).request;
      failures = 0;
    } catch (error) {
      if (!(error instanceof TransientError) || ++failures > MAX_TRANSIENT_FAILURES) throw error;
      deps.error(`${error.message}; retrying`);
      await deps.sleep(Math.min(30_000, 1000 * 2 ** failures));
    }
  }
  return view;
}

async function decideAndActivate(broker: Broker, options: RequestOptions, deps: RequestDeps, id: string) {
  const view = await waitForDecision(broker, options, deps, id);
  if (view.state === 'PENDING') {
    await broker.call('POST', `/api/requests/${id}/cancel`, { reason: 'not decided within --wait-timeout' });
    deps.error(`Request ${id} was not decided within ${options.waitTimeoutSeconds} s; cancelled it`);
    return 2;
  }
  if (DECIDED_AGAINST.has(view.state)) {
    deps.error(`Request ${id} is ${view.state}`);
    return 2;
  }
  if (view.state !== 'APPROVED')
    throw new RequestCommandError(`Request ${id} is ${view.state}; cannot activate it`);
  const { credential } = await broker.call<{ credential: unknown }>(
    'POST',
    `/api/requests/${id}/activate`,
    {},
  );
  if (options.out) {
    await writeCredentialFile(options.out, credential);
    deps.error(`Request ${id} is active; credential written to ${options.out}`);
  } else {
    deps.log(JSON.stringify(credential, null, 2));
  }
  return 0;
}

/** Runs a parsed `request`; returns the exit code (0 activated or filed, 2 not granted, 1 error). */
export async function runRequest(options: RequestOptions, deps: RequestDeps): Promise<number> {
  const broker = new Broker(options, deps);
  try {
    const created = await broker.call<RequestView>('POST', '/api/requests', {
      entitlementId: options.entitlementId,
      durationSeconds: options.durationSeconds,
      justification: options.task,
      ...(options.ticket === undefined ? {} : { ticket: options.ticket }),
    });
    if (!options.wait) {
      deps.log(JSON.stringify({ id: created.id, state: created.state }));
      return 0;
    }
    deps.error(`Filed request ${created.id}; waiting for approval…`);
    return await decideAndActivate(broker, options, deps, created.id);
  } catch (error) {
    if (!(error instanceof RequestCommandError)) throw error;
    deps.error(error.message);
    return 1;
  }
}

/** `npm run cli -- request …`. */
export async function requestCommand(args: string[], deps?: Partial<RequestDeps>): Promise<number> {
  const options = parseRequestArgs(args);
  const error = deps?.error ?? ((line: string) => console.error(line));
  if (typeof options === 'string') {
    error(`${options}\nusage: npm run cli -- ${REQUEST_USAGE}`);
    return 1;
  }
  return runRequest(options, {
    fetch: deps?.fetch ?? fetch,
    env: deps?.env,
    log: deps?.log ?? ((line) => console.log(line)),
    error,
    sleep: deps?.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
  });
}
