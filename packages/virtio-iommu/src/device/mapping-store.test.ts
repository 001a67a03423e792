import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MappingPool, MappingTree } from './mapping-store.js';

/**
 * The B+ tree keyed by pool slots stays ordered by start address through splits, merges and
 * slot reuse (thousands of mappings, so internal nodes exist), across two domains sharing a pool.
 */

const halves = (v: bigint) => [Number(v & 0xffff_ffffn), Number(v >> 32n)] as const;

describe('MappingTree', () => {
  it('floor and lookup agree with a sorted reference through random inserts and removals', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.nat({ max: 20_000 }), fc.nat({ max: 1 })), {
          minLength: 3000,
          maxLength: 6000,
        }),
        (ops) => {
          const pool = new MappingPool();
          const trees = [new MappingTree(pool), new MappingTree(pool)];
          const models = [new Map<bigint, number>(), new Map<bigint, number>()];
          // Starts spread over the 64-bit space: page k at k * 2^44 + k * 0x1000.
          const startOf = (k: number) => ((BigInt(k) << 44n) + BigInt(k) * 0x1000n) & ((1n << 64n) - 1n);
          for (const [insert, k, which] of ops) {
            const tree = trees[which]!;
            const model = models[which]!;
            const start = startOf(k);
            const [lo, hi] = halves(start);
            if (insert && !model.has(start)) {
              const [elo, ehi] = halves(start + 0xfffn);
              const slot = pool.allocate(lo, hi, elo, ehi, k, 0, 1);
              tree.insert(slot);
              model.set(start, slot);
            } else if (!insert && model.has(start)) {
              tree.remove(model.get(start)!);
              model.delete(start);
            }
          }
          for (const [i, tree] of trees.entries()) {
            tree.checkValid();
            const starts = [...models[i]!.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
            expect(tree.size).toBe(starts.length);
            for (let probe = 0; probe < 200; probe++) {
              const at = startOf(probe * 100) + 0x800n;
              const [lo, hi] = halves(at);
              const expected = starts.filter((s) => s <= at).pop();
              const slot = tree.floor(lo, hi);
              expect(
                slot < 0 ? undefined : (BigInt(pool.startHi[slot]!) << 32n) | BigInt(pool.startLo[slot]!),
              ).toBe(expected);
              expect(tree.lookup(lo, hi) >= 0).toBe(expected !== undefined && at <= expected + 0xfffn);
            }
          }
          expect(pool.live).toBe(models[0]!.size + models[1]!.size);
          for (const tree of trees) tree.clear();
          expect(pool.live).toBe(0);
        },
      ),
      { numRuns: 5 },
    );
  });
});
