// The `tlog` benchmark's pieces: a migrated broker database without the apps (so no worker's sequencer runs
// beside the measured one), the real append path (appendAuditEvent in a TypeORM transaction, runtime role),
// the sequencer's batches, and proofs read from the stored subtrees.
import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { appendAuditEvent } from '../../libs/audit/audit-log.js';
import { AuditAction } from '../../libs/audit/audit-actions.js';
import { readExportedEvents } from '../../libs/audit/export.js';
import { eventJcs } from '../../libs/audit/jcs.js';
import { leafHash, rootAt } from '../../libs/audit/merkle.js';
import {
  consistencyOf,
  inclusionOf,
  integrateAll,
  integrateAuditEvents,
  integratedSize,
  storedSubtrees,
} from '../../libs/audit/merkle-log.js';
import { createDataSource, migrateAsOwner } from '../../libs/db/data-source.js';
import { createBrokerDatabase } from '../../libs/devstack/database-roles.js';
import { startServices, withClient, type BenchServices } from './stack.js';
import { loadSyntheticAudit } from './synthetic-audit.js';

/** The origin the synthetic step-up assertions are made for (nothing verifies them here). */
const ORIGIN = 'http://localhost:3000';

export interface TlogDatabase {
  services: BenchServices;
  ownerUrl: string;
  /** The runtime role's data source, as the worker's sequencer and the broker's appends use it. */
  runtime: DataSource;
  stop(): Promise<void>;
}

/** PostgreSQL (fsync on), the broker database migrated as its owner, a runtime data source; no apps. */
export async function startTlogDatabase(): Promise<TlogDatabase> {
  const services = await startServices();
  try {
    const roles = { owner: 'bench_owner', runtime: 'bench_runtime' };
    const broker = await createBrokerDatabase(services.adminUrl, 'broker', roles);
    await migrateAsOwner(broker.ownerUrl, roles.runtime);
    const runtime = createDataSource(broker.runtimeUrl, { poolSize: 4, applicationName: 'jit-bench-tlog' });
    await runtime.initialize();
    return {
      services,
      ownerUrl: broker.ownerUrl,
      runtime,
      async stop() {
        await runtime.destroy().catch(console.error);
        await services.stop();
      },
    };
  } catch (error) {
    await services.stop();
    throw error;
  }
}

/**
 * What autovacuum and the checkpointer do some time after a bulk load, done now: the nodes table vacuumed and
 * analysed (as its owner), then a checkpoint, so the proofs do not run beside them.
 */
export async function settle(db: TlogDatabase): Promise<void> {
  await withClient(db.ownerUrl, (client) => client.query('VACUUM (ANALYZE) audit_merkle_nodes'));
  await withClient(db.services.adminUrl, (client) => client.query('CHECKPOINT'));
}

/** The chain head's seq. */
export async function headSeq(db: TlogDatabase): Promise<number> {
  const [row] = (await db.runtime.query(
    `SELECT seq::text AS seq FROM audit_chain_head WHERE id = 1`,
  )) as Array<{
    seq: string;
  }>;
  return Number(row.seq);
}

/** Appends `count` synthetic events (COPY, bench/lib/synthetic-audit.ts) after the head. */
export async function loadEvents(db: TlogDatabase, count: number): Promise<number> {
  if (count <= 0) return 0;
  const load = await loadSyntheticAudit({
    adminUrl: db.services.adminUrl,
    ownerUrl: db.ownerUrl,
    count,
    origin: ORIGIN,
  });
  return load.loadSeconds;
}

/** Integrates everything committed; seconds taken. */
export async function integrateEverything(db: TlogDatabase): Promise<number> {
  const startedAt = performance.now();
  await integrateAll(db.runtime);
  return (performance.now() - startedAt) / 1000;
}

/**
 * `transactions` transactions through the real append path, one after the other, each appending
 * `eventsPerTransaction` events (session.started) and committing: the latency of each, ms.
 */
export async function appendThroughBroker(
  db: TlogDatabase,
  transactions: number,
  eventsPerTransaction: number,
): Promise<number[]> {
  const latencies: number[] = [];
  for (let index = 0; index < transactions; index++) {
    const startedAt = performance.now();
    await db.runtime.transaction(async (manager) => {
      for (let event = 0; event < eventsPerTransaction; event++) {
        await appendAuditEvent(manager, {
          actorId: randomUUID(),
          action: AuditAction.SessionStarted,
          subjectType: 'session',
          subjectId: randomUUID(),
          data: { authenticatorId: randomUUID(), ip: '10.0.0.7', expiresAt: new Date().toISOString() },
        });
      }
    });
    latencies.push(performance.now() - startedAt);
  }
  return latencies;
}

/** The leaf bytes (JCS of the exported event) of the next `count` events after the tree's size. */
export async function nextLeafBytes(db: TlogDatabase, count: number): Promise<Buffer[]> {
  const size = await integratedSize(db.runtime);
  const head = await headSeq(db);
  const events = await readExportedEvents(db.runtime, size, head, count);
  return events.map((event) => Buffer.from(eventJcs(event), 'utf8'));
}

/** The floor: leafHash (sha256 of 0x00 ‖ bytes) over each leaf's bytes, in process; µs per event. */
export function sha256LeafFloor(leaves: readonly Buffer[]): number {
  const startedAt = performance.now();
  for (const leaf of leaves) leafHash(leaf);
  return ((performance.now() - startedAt) * 1000) / leaves.length;
}

/** `batches` sequencer transactions of `batch` events each; the time of each, ms. */
export async function integrateBatches(db: TlogDatabase, batch: number, batches: number): Promise<number[]> {
  const times: number[] = [];
  for (let index = 0; index < batches; index++) {
    const startedAt = performance.now();
    const step = await integrateAuditEvents(db.runtime, batch);
    times.push(performance.now() - startedAt);
    if (step?.added !== batch) throw new Error(`integrated ${step?.added ?? 'nothing'}, not ${batch}`);
  }
  return times;
}

/** Latency (ms) of each call of `operation` with a random number below `bound` (1 ≤ n ≤ bound). */
export async function timedRandom(
  count: number,
  bound: number,
  operation: (n: number) => Promise<unknown>,
): Promise<number[]> {
  const latencies: number[] = [];
  for (let index = 0; index < count; index++) {
    const n = 1 + Math.floor(Math.random() * bound);
    const startedAt = performance.now();
    await operation(n);
    latencies.push(performance.now() - startedAt);
  }
  return latencies;
}

/** The proofs and tree head an auditor asks for, at the tree's `size`. */
export function proofOperations(db: TlogDatabase, size: number) {
  const reader = storedSubtrees(db.runtime);
  return {
    inclusion: (seq: number) => inclusionOf(db.runtime, seq, size),
    consistency: (from: number) => consistencyOf(db.runtime, from, size),
    treeHead: () => rootAt(reader, size),
    /** The floor: one primary-key lookup of a stored node (one round trip, as a proof's query is). */
    nodeLookup: (seq: number) =>
      db.runtime.query(`SELECT hash FROM audit_merkle_nodes WHERE level = 0 AND idx = $1`, [String(seq - 1)]),
  };
}
