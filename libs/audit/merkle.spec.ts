import { createHash } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  consistencyProof,
  EMPTY_ROOT,
  inclusionProof,
  leafHash,
  MemoryTree,
  nodeHash,
  rootAt,
  rootSubtrees,
  verifyConsistency,
  verifyInclusion,
  type SubtreeReader,
} from './merkle.js';

// The reference corpus of RFC 6962 implementations (certificate-transparency, transparency-dev/merkle
// testonly/constants.go): eight leaves and the roots of trees of size 0-8.
const LEAVES = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
];
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
// Published inclusion proofs (certificate-transparency merkle_verifier tests) and consistency proofs.
const INCLUSION: Array<[number, number, string[]]> = [
  [0, 1, []],
  [
    0,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    5,
    8,
    [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
];
const CONSISTENCY: Array<[number, number, string[]]> = [
  [1, 1, []],
  [
    1,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    6,
    8,
    [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [
    2,
    5,
    [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
];

const hex = (buffers: Buffer[]) => buffers.map((buffer) => buffer.toString('hex'));
const unhex = (values: string[]) => values.map((value) => Buffer.from(value, 'hex'));

function treeOf(leaves: Buffer[]): MemoryTree {
  const tree = new MemoryTree();
  for (const leaf of leaves) tree.append(leaf);
  return tree;
}

/** MTH straight from RFC 9162 §2.1.1, recursively over the leaf hashes: the reference for any size. */
function naiveRoot(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return EMPTY_ROOT;
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(naiveRoot(leaves.slice(0, k)), naiveRoot(leaves.slice(k)));
}

const syntheticLeaves = (count: number) =>
  Array.from({ length: count }, (_, i) => leafHash(Buffer.from(`event ${i}`)));

/** One flipped bit in a copy of `buffer`. */
const flipped = (buffer: Buffer, bit = 0) => {
  const copy = Buffer.from(buffer);
  copy[bit >> 3] ^= 1 << (bit & 7);
  return copy;
};

describe('RFC 9162 Merkle tree', () => {
  const leaves = LEAVES.map((leaf) => leafHash(Buffer.from(leaf, 'hex')));
  const tree = treeOf(leaves);

  it('reproduces the reference roots of sizes 0-8', async () => {
    for (let size = 0; size <= 8; size++) {
      expect((await rootAt(tree, size)).toString('hex')).toBe(ROOTS[size]);
    }
  });

  it('reproduces the published inclusion and consistency proofs, and verifies them', async () => {
    for (const [index, size, proof] of INCLUSION) {
      expect(hex(await inclusionProof(tree, index, size))).toEqual(proof);
      expect(
        verifyInclusion(leaves[index], index, size, unhex(proof), Buffer.from(ROOTS[size], 'hex')),
      ).toEqual({
        ok: true,
      });
    }
    for (const [from, to, proof] of CONSISTENCY) {
      expect(hex(await consistencyProof(tree, from, to))).toEqual(proof);
      const check = verifyConsistency(
        from,
        to,
        Buffer.from(ROOTS[from], 'hex'),
        Buffer.from(ROOTS[to], 'hex'),
        unhex(proof),
      );
      expect(check).toEqual({ ok: true });
    }
  });

  it('matches the recursive definition for every size 1-64, from at most log n stored subtrees', async () => {
    const many = syntheticLeaves(64);
    const big = treeOf(many);
    for (let size = 1; size <= 64; size++) {
      expect((await rootAt(big, size)).equals(naiveRoot(many.slice(0, size)))).toBe(true);
      expect(rootSubtrees(size).length).toBeLessThanOrEqual(Math.ceil(Math.log2(size)) + 1);
    }
  });

  it('asks its store once per proof, for O(log n) subtrees', async () => {
    const big = treeOf(syntheticLeaves(1000));
    const calls: number[] = [];
    const counting: SubtreeReader = {
      subtrees: (refs) => {
        calls.push(refs.length);
        return big.subtrees(refs);
      },
    };
    await inclusionProof(counting, 437, 1000);
    await consistencyProof(counting, 333, 1000);
    await rootAt(counting, 999);
    expect(calls).toHaveLength(3);
    expect(Math.max(...calls)).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(1000)));
  });

  it('refuses tampered proofs, roots, leaves, indexes and sizes with a reason', async () => {
    const root8 = Buffer.from(ROOTS[8], 'hex');
    const proof = unhex(INCLUSION[1][2]);
    const refused = [
      verifyInclusion(flipped(leaves[0]), 0, 8, proof, root8),
      verifyInclusion(leaves[0], 1, 8, proof, root8),
      verifyInclusion(leaves[0], 0, 4, proof, root8),
      verifyInclusion(leaves[0], 0, 8, [proof[0], flipped(proof[1]), proof[2]], root8),
      verifyInclusion(leaves[0], 0, 8, proof.slice(0, 2), root8),
      verifyInclusion(leaves[0], 0, 8, [...proof, proof[0]], root8),
      verifyInclusion(leaves[0], 8, 8, proof, root8),
      verifyConsistency(6, 8, flipped(Buffer.from(ROOTS[6], 'hex')), root8, unhex(CONSISTENCY[2][2])),
      verifyConsistency(6, 8, Buffer.from(ROOTS[6], 'hex'), flipped(root8), unhex(CONSISTENCY[2][2])),
      verifyConsistency(6, 8, Buffer.from(ROOTS[6], 'hex'), root8, []),
      verifyConsistency(8, 6, root8, Buffer.from(ROOTS[6], 'hex'), []),
      verifyConsistency(5, 5, Buffer.from(ROOTS[5], 'hex'), root8, []),
    ];
    for (const check of refused) expect(check).toEqual({ ok: false, reason: expect.stringMatching(/\w/) });
  });

  it('proves every inclusion and consistency of random trees, and no flipped byte passes (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 300 }),
        fc.nat(),
        fc.nat(),
        fc.nat(),
        async (size, a, b, bit) => {
          const all = syntheticLeaves(size);
          const random = treeOf(all);
          const index = a % size;
          const from = (b % size) + 1;
          const root = await rootAt(random, size);
          const proof = await inclusionProof(random, index, size);
          expect(verifyInclusion(all[index], index, size, proof, root)).toEqual({ ok: true });
          const consistency = await consistencyProof(random, from, size);
          const fromRoot = await rootAt(random, from);
          expect(verifyConsistency(from, size, fromRoot, root, consistency)).toEqual({ ok: true });
          expect(verifyInclusion(all[index], index, size, proof, flipped(root, bit % 256)).ok).toBe(false);
          if (proof.length > 0) {
            const bad = proof.map((hash, i) => (i === bit % proof.length ? flipped(hash, bit % 256) : hash));
            expect(verifyInclusion(all[index], index, size, bad, root).ok).toBe(false);
          }
          if (consistency.length > 0) {
            const bad = consistency.map((hash, i) =>
              i === bit % consistency.length ? flipped(hash, bit % 256) : hash,
            );
            expect(verifyConsistency(from, size, fromRoot, root, bad).ok).toBe(false);
          }
        },
      ),
      { numRuns: 200, seed: 9162 },
    );
  });

  it('keeps the hash of each complete subtree as leaves arrive', () => {
    const growing = new MemoryTree();
    const completed = syntheticLeaves(4).map((leaf) =>
      growing.append(leaf).map((node) => `${node.level}:${node.index}`),
    );
    expect(completed).toEqual([['0:0'], ['0:1', '1:0'], ['0:2'], ['0:3', '1:1', '2:0']]);
    expect(growing.size).toBe(4);
    expect(createHash('sha256').update('').digest()).toEqual(EMPTY_ROOT);
  });
});
