// The audit log's Merkle tree in PostgreSQL (issue 22): one sequencer integrates committed events into stored
// complete subtrees, the audit key signs C2SP checkpoints of it, and any root or proof is one query away.
// The hash chain (audit-flush.ts) still orders and links the events; the tree is built beside it, leaf i =
// the event of seq i+1 as an export writes it.
import type { DataSource, EntityManager } from 'typeorm';
import { auditPrivateKey, type AuditKeySource } from './audit-key.js';
import { readExportedEvents } from './export.js';
import {
  auditLeafHash,
  consistencyProof,
  inclusionProof,
  MemoryTree,
  rootAt,
  rootSubtrees,
  type SubtreeReader,
  type SubtreeRef,
} from './merkle.js';
import { formatCheckpoint, signNote } from './tlog-note.js';

type Queryable = Pick<DataSource | EntityManager, 'query'>;

/**
 * The log's origin line and checkpoint key name: the host of the first allowed web origin, then `/jit-audit`
 * (C2SP tlog-checkpoint: a schema-less URL naming the log).
 */
export function logOriginOf(origins: readonly string[]): string {
  return `${new URL(origins[0]).host}/jit-audit`;
}

/** The sequencer's transaction-scoped advisory lock ("jito", "mklg"): one writer of the tree at a time. */
const SEQUENCER_LOCK = [0x6a69746f, 0x6d6b6c67];
/** Events integrated per transaction. */
export const SEQUENCER_BATCH = 5_000;

/** Stored complete subtrees as a SubtreeReader: every request is one query. */
export function storedSubtrees(db: Queryable): SubtreeReader {
  return {
    async subtrees(refs: readonly SubtreeRef[]): Promise<Buffer[]> {
      if (refs.length === 0) return [];
      const rows = (await db.query(
        `SELECT level, idx::text AS idx, hash FROM audit_merkle_nodes
          WHERE (level, idx) IN (SELECT * FROM unnest($1::smallint[], $2::bigint[]))`,
        [refs.map((ref) => ref.level), refs.map((ref) => String(ref.index))],
      )) as Array<{ level: number; idx: string; hash: Buffer }>;
      const found = new Map(rows.map((row) => [`${row.level}:${row.idx}`, row.hash]));
      return refs.map((ref) => {
        const hash = found.get(`${ref.level}:${ref.index}`);
        if (!hash) throw new Error(`The Merkle tree misses its subtree ${ref.level}:${ref.index}`);
        return hash;
      });
    },
  };
}

/** How many events the tree holds. */
export async function integratedSize(db: Queryable): Promise<number> {
  const [row] = (await db.query(`SELECT size::text AS size FROM audit_merkle_size WHERE id = 1`)) as Array<{
    size: string;
  }>;
  return Number(row.size);
}

/**
 * Integrates up to `batch` committed events after the tree's size, in one transaction: their leaves and every
 * subtree they complete are inserted, then the size moves. Null when another sequencer holds the lock.
 */
export async function integrateAuditEvents(
  dataSource: DataSource,
  batch: number = SEQUENCER_BATCH,
): Promise<{ size: number; added: number } | null> {
  return dataSource.transaction(async (manager) => {
    const [{ locked }] = (await manager.query('SELECT pg_try_advisory_xact_lock($1, $2) AS locked', [
      ...SEQUENCER_LOCK,
    ])) as Array<{ locked: boolean }>;
    if (!locked) return null;
    const size = await integratedSize(manager);
    // Every event up to the chain head is committed: the head moves in the transaction that wrote them.
    const [{ head }] = (await manager.query(
      'SELECT seq::text AS head FROM audit_chain_head WHERE id = 1',
    )) as Array<{ head: string }>;
    const events = await readExportedEvents(manager, size, Number(head), batch);
    if (events.length === 0) return { size, added: 0 };
    events.forEach((event, i) => {
      if (event.seq !== size + 1 + i) throw new Error(`Audit event seq ${size + 1 + i} is missing`);
    });
    const frontier = rootSubtrees(size);
    const hashes = await storedSubtrees(manager).subtrees(frontier);
    const tree = MemoryTree.continuing(
      size,
      frontier.map((ref, i) => ({ ...ref, hash: hashes[i] })),
    );
    const nodes = events.flatMap((event) => tree.append(auditLeafHash(event)));
    await manager.query(
      `INSERT INTO audit_merkle_nodes (level, idx, hash)
       SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])`,
      [
        nodes.map((node) => node.level),
        nodes.map((node) => String(node.index)),
        nodes.map((node) => node.hash),
      ],
    );
    await manager.query('UPDATE audit_merkle_size SET size = $1 WHERE id = 1', [String(tree.size)]);
    return { size: tree.size, added: events.length };
  });
}

/** Integrates until the tree has caught up with the chain (or another sequencer is at work). */
export async function integrateAll(dataSource: DataSource): Promise<number> {
  let integrated = 0;
  for (;;) {
    const step = await integrateAuditEvents(dataSource);
    if (!step || step.added === 0) return integrated;
    integrated += step.added;
  }
}

/** A stored signed checkpoint. */
export interface TlogCheckpoint {
  origin: string;
  size: number;
  root: string;
  note: string;
  createdAt: string;
}

function checkpointOf(origin: string, row: { size: string; root: Buffer; note: string; createdAt: Date }) {
  return {
    origin,
    size: Number(row.size),
    root: row.root.toString('base64'),
    note: row.note,
    createdAt: row.createdAt.toISOString(),
  };
}

/** The checkpoint of `size`, or the latest when size is undefined; null when there is none. */
export async function storedCheckpoint(
  db: Queryable,
  origin: string,
  size?: number,
): Promise<TlogCheckpoint | null> {
  const where = size === undefined ? '' : 'WHERE size = $1';
  const rows = (await db.query(
    `SELECT size::text AS size, root, note, created_at AS "createdAt" FROM audit_tlog_checkpoints ${where}
      ORDER BY size DESC LIMIT 1`,
    size === undefined ? [] : [String(size)],
  )) as Array<{ size: string; root: Buffer; note: string; createdAt: Date }>;
  return rows.length === 0 ? null : checkpointOf(origin, rows[0]);
}

/**
 * Signs the tree at its integrated size as a C2SP checkpoint (signed note, key name = origin) with the audit
 * key and stores it; the existing one when that size is already signed. Null while the tree is empty.
 */
export async function issueCheckpoint(
  dataSource: DataSource,
  keys: AuditKeySource,
  origin: string,
): Promise<TlogCheckpoint | null> {
  await integrateAll(dataSource);
  const size = await integratedSize(dataSource);
  if (size === 0) return null;
  const existing = await storedCheckpoint(dataSource, origin, size);
  if (existing) return existing;
  const root = await rootAt(storedSubtrees(dataSource), size);
  const privateKey = auditPrivateKey(await keys.currentKey('audit'));
  const note = signNote(formatCheckpoint({ origin, size, root, extensions: [] }), origin, privateKey);
  await dataSource.query(
    `INSERT INTO audit_tlog_checkpoints (size, root, note) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING`,
    [String(size), root, note],
  );
  return storedCheckpoint(dataSource, origin, size);
}

/** Leaf hash and inclusion proof of the event `seq` in the tree of `size` (base64 hashes). */
export async function inclusionOf(db: Queryable, seq: number, size: number) {
  const stored = storedSubtrees(db);
  const leafRef: SubtreeRef = { level: 0, index: seq - 1 };
  let leaf: Buffer | undefined;
  // The leaf rides along with the path's one query: one round trip for the whole answer.
  const reader: SubtreeReader = {
    async subtrees(refs) {
      if (leaf) return stored.subtrees(refs);
      const hashes = await stored.subtrees([...refs, leafRef]);
      leaf = hashes.pop();
      return hashes;
    },
  };
  const proof = await inclusionProof(reader, seq - 1, size);
  leaf ??= (await stored.subtrees([leafRef]))[0];
  return { seq, index: seq - 1, size, leafHash: leaf.toString('base64'), proof: proof.map(base64) };
}

/** The consistency proof between the trees of `from` and `to` (base64 hashes). */
export async function consistencyOf(db: Queryable, from: number, to: number) {
  const proof = await consistencyProof(storedSubtrees(db), from, to);
  return { from, to, proof: proof.map(base64) };
}

const base64 = (hash: Buffer) => hash.toString('base64');
