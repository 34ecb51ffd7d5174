// RFC 9162 §2.1 Merkle trees over the audit log (issue 22): hashing, tree heads, inclusion and consistency
// proofs, and their verification. Pure (node:crypto only), so the offline verifier can import it.
//
// Proofs are computed from COMPLETE ALIGNED SUBTREES: the hash of leaves [i·2^l, (i+1)·2^l), "level l, index
// i". Every range the RFC's recursion meets starts at a multiple of its largest power-of-two split, so its left
// part is such a subtree and only the right edge recurses: a root or a proof needs O(log n) of them, which a
// store keeping the hash of each complete subtree answers in one query (`subtreesFor`).
import { createHash } from 'node:crypto';
import { eventJcs } from './jcs.js';
import type { ExportedEvent } from './manifest.js';

/** SHA-256 of the empty string: the root of the empty tree (RFC 9162 §2.1.1). */
export const EMPTY_ROOT = createHash('sha256').digest();

/** Leaf hash: SHA-256(0x00 ‖ data) (RFC 9162 §2.1.1). */
export function leafHash(data: Uint8Array): Buffer {
  return createHash('sha256').update(Buffer.of(0)).update(data).digest();
}

/** Interior node hash: SHA-256(0x01 ‖ left ‖ right) (RFC 9162 §2.1.1). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(Buffer.of(1)).update(left).update(right).digest();
}

/**
 * The leaf of an audit event: leafHash(JCS(event)) of the event exactly as an export line carries it (its
 * chain `prevHash` and `hash` included, so the tree and the chain vouch for the same bytes). Leaf i is seq i+1.
 */
export function auditLeafHash(event: ExportedEvent): Buffer {
  return leafHash(Buffer.from(eventJcs(event), 'utf8'));
}

/** A complete aligned subtree: leaves [index·2^level, (index+1)·2^level). */
export interface SubtreeRef {
  level: number;
  index: number;
}

/** Where the hashes of complete aligned subtrees come from (level 0: the leaf hashes). */
export interface SubtreeReader {
  subtrees(refs: readonly SubtreeRef[]): Promise<Buffer[]>;
}

/** The largest power of two strictly below n (n ≥ 2). */
function splitOf(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** log2 of a power of two. */
function log2(size: number): number {
  return Math.round(Math.log2(size));
}

function checkSize(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a whole number ≥ 0`);
}

/**
 * A proof or root as a plan over subtrees: `node(start, end)` is MTH(D[start:end]) and is evaluated once the
 * subtrees it needs are known, so a store is asked for all of them at once.
 */
type Plan = (lookup: (ref: SubtreeRef) => Buffer) => Buffer;

/** The plan of MTH(D[start:end]) for end > start, which the RFC recursion only meets aligned. */
function rangePlan(start: number, end: number, needs: SubtreeRef[]): Plan {
  const size = end - start;
  if ((size & (size - 1)) === 0 && start % size === 0) {
    const ref = { level: log2(size), index: start / size };
    needs.push(ref);
    return (lookup) => lookup(ref);
  }
  const k = splitOf(size);
  const left = rangePlan(start, start + k, needs);
  const right = rangePlan(start + k, end, needs);
  return (lookup) => nodeHash(left(lookup), right(lookup));
}

/** PATH(m, D[start:end]) of RFC 9162 §2.1.3.1, as plans, leaf side first. */
function pathPlan(m: number, start: number, end: number, needs: SubtreeRef[]): Plan[] {
  const size = end - start;
  if (size === 1) return [];
  const k = splitOf(size);
  if (m < k) return [...pathPlan(m, start, start + k, needs), rangePlan(start + k, end, needs)];
  return [...pathPlan(m - k, start + k, end, needs), rangePlan(start, start + k, needs)];
}

/** SUBPROOF(m, D[start:end], b) of RFC 9162 §2.1.4.1, as plans. */
function subproofPlan(m: number, start: number, end: number, whole: boolean, needs: SubtreeRef[]): Plan[] {
  const size = end - start;
  if (m === size) return whole ? [] : [rangePlan(start, end, needs)];
  const k = splitOf(size);
  if (m <= k) return [...subproofPlan(m, start, start + k, whole, needs), rangePlan(start + k, end, needs)];
  return [...subproofPlan(m - k, start + k, end, false, needs), rangePlan(start, start + k, needs)];
}

/** Fetches every subtree the plans need in one call and evaluates them. */
async function evaluate(reader: SubtreeReader, plans: Plan[], needs: SubtreeRef[]): Promise<Buffer[]> {
  const keyOf = (ref: SubtreeRef) => `${ref.level}:${ref.index}`;
  const unique = [...new Map(needs.map((ref) => [keyOf(ref), ref])).values()];
  const hashes = await reader.subtrees(unique);
  const found = new Map(unique.map((ref, i) => [keyOf(ref), hashes[i]]));
  const lookup = (ref: SubtreeRef) => {
    const hash = found.get(keyOf(ref));
    if (!hash) throw new Error(`subtree ${keyOf(ref)} is missing from the store`);
    return hash;
  };
  return plans.map((plan) => plan(lookup));
}

/** The complete aligned subtrees a root of `size` is made of (one store query). */
export function rootSubtrees(size: number): SubtreeRef[] {
  checkSize('size', size);
  const needs: SubtreeRef[] = [];
  if (size > 0) rangePlan(0, size, needs);
  return needs;
}

/** MTH(D[0:size]): the tree head at `size`. */
export async function rootAt(reader: SubtreeReader, size: number): Promise<Buffer> {
  checkSize('size', size);
  if (size === 0) return EMPTY_ROOT;
  const needs: SubtreeRef[] = [];
  const plan = rangePlan(0, size, needs);
  return (await evaluate(reader, [plan], needs))[0];
}

/** The audit path of leaf `index` in the tree of `size` (RFC 9162 §2.1.3.1). */
export async function inclusionProof(reader: SubtreeReader, index: number, size: number): Promise<Buffer[]> {
  checkSize('index', index);
  checkSize('size', size);
  if (index >= size) throw new RangeError(`leaf ${index} is not in a tree of ${size}`);
  const needs: SubtreeRef[] = [];
  return evaluate(reader, pathPlan(index, 0, size, needs), needs);
}

/** The consistency proof between tree sizes `from` ≤ `to` (RFC 9162 §2.1.4.1; empty when from is 0 or to). */
export async function consistencyProof(reader: SubtreeReader, from: number, to: number): Promise<Buffer[]> {
  checkSize('from', from);
  checkSize('to', to);
  if (from > to) throw new RangeError(`size ${from} is after ${to}`);
  if (from === 0 || from === to) return [];
  const needs: SubtreeRef[] = [];
  return evaluate(reader, subproofPlan(from, 0, to, true, needs), needs);
}

export type ProofCheck = { ok: true } | { ok: false; reason: string };

const fail = (reason: string): ProofCheck => ({ ok: false, reason });

/** Verifies an inclusion proof (RFC 9162 §2.1.3.2). */
export function verifyInclusion(
  leaf: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): ProofCheck {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size)
    return fail(`leaf index ${index} is not inside a tree of size ${size}`);
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) return fail('the inclusion proof is longer than the tree is deep');
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else r = nodeHash(r, p);
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) return fail('the inclusion proof is shorter than the tree is deep');
  if (!r.equals(Buffer.from(root)))
    return fail(`leaf ${index} is not in the tree of size ${size} with that root`);
  return { ok: true };
}

/** Verifies a consistency proof between two tree heads (RFC 9162 §2.1.4.2). */
export function verifyConsistency(
  from: number,
  to: number,
  fromRoot: Uint8Array,
  toRoot: Uint8Array,
  proof: readonly Uint8Array[],
): ProofCheck {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || from > to)
    return fail(`sizes ${from} and ${to} are not in order`);
  const first = Buffer.from(fromRoot);
  const second = Buffer.from(toRoot);
  if (from === 0)
    return proof.length === 0 ? { ok: true } : fail('a proof from the empty tree must be empty');
  if (from === to) {
    if (proof.length !== 0) return fail('a proof between equal sizes must be empty');
    return first.equals(second) ? { ok: true } : fail(`two different roots for the same size ${from}`);
  }
  if (proof.length === 0) return fail('the consistency proof is empty');
  const path = (from & (from - 1)) === 0 ? [first, ...proof] : [...proof];
  let fn = from - 1;
  let sn = to - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr: Buffer = Buffer.from(path[0]);
  let sr: Buffer = Buffer.from(path[0]);
  for (const c of path.slice(1)) {
    if (sn === 0) return fail('the consistency proof is longer than the trees are deep');
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else sr = nodeHash(sr, c);
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) return fail('the consistency proof is shorter than the trees are deep');
  if (!fr.equals(first))
    return fail(`the proof does not lead to the root of size ${from}: the log was rewritten`);
  if (!sr.equals(second)) return fail(`the proof does not lead to the root of size ${to}`);
  return { ok: true };
}

/**
 * A tree kept in memory: the hash of every complete aligned subtree, filled as leaves are appended (each append
 * completes at most log n subtrees). The sequencer's batch and the tests use it; it is a SubtreeReader.
 */
export class MemoryTree implements SubtreeReader {
  /** levels[l][i]: the complete subtree at level l, index i. */
  private readonly levels: Buffer[][] = [[]];
  private count = 0;

  /**
   * A tree that goes on from `size` leaves kept elsewhere: `frontier` holds the hashes of rootSubtrees(size),
   * the only stored nodes an append can need (a store's sequencer continues from them).
   */
  static continuing(size: number, frontier: ReadonlyArray<SubtreeRef & { hash: Buffer }>): MemoryTree {
    const tree = new MemoryTree();
    for (const node of frontier) (tree.levels[node.level] ??= [])[node.index] = node.hash;
    tree.count = size;
    return tree;
  }

  get size(): number {
    return this.count;
  }

  /** Appends a leaf hash; returns the subtrees it completed, level 0 first. */
  append(leaf: Buffer): Array<SubtreeRef & { hash: Buffer }> {
    const completed: Array<SubtreeRef & { hash: Buffer }> = [];
    let level = 0;
    let index = this.count;
    this.count += 1;
    let hash = leaf;
    for (;;) {
      (this.levels[level] ??= [])[index] = hash;
      completed.push({ level, index, hash });
      if (index % 2 === 0) break;
      hash = nodeHash(this.levels[level][index - 1], hash);
      level += 1;
      index = Math.floor(index / 2);
    }
    return completed;
  }

  async subtrees(refs: readonly SubtreeRef[]): Promise<Buffer[]> {
    return refs.map((ref) => {
      const hash = this.levels[ref.level]?.[ref.index];
      if (!hash) throw new Error(`no complete subtree at level ${ref.level}, index ${ref.index}`);
      return hash;
    });
  }
}
