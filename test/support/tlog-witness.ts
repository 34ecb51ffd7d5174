// A small local witness following c2sp.org/tlog-witness, for the tests (issue 22): `POST /add-checkpoint` with
// `old <size>`, the consistency proof lines, a blank line and a signed checkpoint. It knows each log by its
// origin and vkeys, keeps the latest size and root it cosigned per origin (in memory, updated atomically: the
// handler is synchronous), checks the proof from that size, and answers with its cosignature/v1 line.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EMPTY_ROOT, verifyConsistency } from '../../libs/audit/merkle.js';
import {
  cosignatureLine,
  formatVkey,
  noteVerifier,
  parseCheckpoint,
  parseNote,
  parseVkey,
  verifyNote,
  type NoteVerifier,
} from '../../libs/audit/tlog-note.js';

/** What the witness answers: status, content type and body. */
export interface WitnessReply {
  status: number;
  contentType: string;
  body: string;
}

const MAX_PROOF_LINES = 63;
const BASE64_HASH = /^[A-Za-z0-9+/]{43}=$/;
const MAX_BODY_BYTES = 64 * 1024;

const reply = (status: number, body: string, contentType = 'text/plain; charset=utf-8'): WitnessReply => ({
  status,
  contentType,
  body: body.endsWith('\n') ? body : `${body}\n`,
});

/** The witness's state and rules, without HTTP: `addCheckpoint` is the whole protocol. */
export class WitnessCore {
  readonly verifier: NoteVerifier;
  readonly vkey: string;
  /** The latest cosigned tree head per origin. */
  readonly latest = new Map<string, { size: number; root: Buffer }>();
  private readonly logs = new Map<string, NoteVerifier[]>();

  constructor(
    readonly name: string,
    private readonly privateKey: KeyObject,
    logVkeys: readonly string[],
    private readonly now: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    this.verifier = noteVerifier(name, privateKey, 0x04);
    this.vkey = formatVkey(this.verifier);
    for (const vkey of logVkeys) this.trustLog(vkey);
  }

  /** Knows one more log key (its name is the log's origin). */
  trustLog(vkey: string): void {
    const log = parseVkey(vkey);
    this.logs.set(log.name, [...(this.logs.get(log.name) ?? []), log]);
  }

  /** One add-checkpoint request body, checked in the order c2sp.org/tlog-witness states the checks. */
  addCheckpoint(body: string): WitnessReply {
    const split = body.indexOf('\n\n');
    if (split < 0) return reply(400, 'no blank line before the checkpoint');
    const [oldLine, ...proofLines] = body.slice(0, split).split('\n');
    const old = /^old (0|[1-9][0-9]*)$/.exec(oldLine);
    if (!old || proofLines.length > MAX_PROOF_LINES || proofLines.some((line) => !BASE64_HASH.test(line)))
      return reply(400, 'malformed old size or proof lines');
    const note = body.slice(split + 2);
    let text: string;
    let checkpoint: ReturnType<typeof parseCheckpoint>;
    try {
      text = parseNote(note).text;
      checkpoint = parseCheckpoint(text);
    } catch (error) {
      return reply(400, (error as Error).message);
    }
    const verifiers = this.logs.get(checkpoint.origin);
    if (!verifiers) return reply(404, `unknown log ${checkpoint.origin}`);
    try {
      if (verifyNote(note, verifiers).signedBy.length === 0)
        return reply(403, 'no signature of a known log key');
    } catch (error) {
      return reply(403, (error as Error).message);
    }
    const oldSize = Number(old[1]);
    if (oldSize > checkpoint.size) return reply(400, 'the old size is past the checkpoint size');
    const latest = this.latest.get(checkpoint.origin) ?? { size: 0, root: EMPTY_ROOT };
    if (oldSize !== latest.size) return reply(409, `${latest.size}\n`, 'text/x.tlog.size');
    if (oldSize === checkpoint.size && !latest.root.equals(checkpoint.root))
      return reply(409, `two roots for size ${oldSize}`);
    const proof = proofLines.map((line) => Buffer.from(line, 'base64'));
    const check = verifyConsistency(oldSize, checkpoint.size, latest.root, checkpoint.root, proof);
    if (!check.ok) return reply(422, check.reason);
    this.latest.set(checkpoint.origin, { size: checkpoint.size, root: checkpoint.root });
    return reply(200, `${cosignatureLine(text, this.name, this.privateKey, this.now())}\n`);
  }
}

/** A WitnessCore served over HTTP on 127.0.0.1; stop() and start() keep its state and port. */
export interface LocalWitness {
  core: WitnessCore;
  name: string;
  /** Its cosignature vkey (type 0x04). */
  vkey: string;
  /** Its submission prefix. */
  url: string;
  /** add-checkpoint requests answered, by status. */
  answered: number[];
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** Starts a local witness that knows the logs of `logVkeys` (their names are the origins). */
export async function startLocalWitness(options: {
  name?: string;
  logVkeys: readonly string[];
}): Promise<LocalWitness> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const core = new WitnessCore(options.name ?? 'witness.test/w1', privateKey, options.logVkeys);
  const answered: number[] = [];
  let server: Server = serve(core, answered);
  await listen(server, 0);
  const port = (server.address() as AddressInfo).port;
  return {
    core,
    name: core.name,
    vkey: core.vkey,
    url: `http://127.0.0.1:${port}`,
    answered,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
    async start() {
      server = serve(core, answered);
      await listen(server, port);
    },
  };
}

function serve(core: WitnessCore, answered: number[]): Server {
  return createServer((request, response) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    request.on('end', () => {
      const answer =
        request.method !== 'POST' || request.url !== '/add-checkpoint'
          ? reply(404, 'not found')
          : size > MAX_BODY_BYTES
            ? reply(413, 'too large')
            : core.addCheckpoint(Buffer.concat(chunks).toString('utf8'));
      answered.push(answer.status);
      response.writeHead(answer.status, { 'content-type': answer.contentType });
      response.end(answer.body);
    });
  });
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
}
