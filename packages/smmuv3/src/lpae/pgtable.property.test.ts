import { IommuProt, isVmmError } from '@vmmkit/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lpaeFixture } from '../testing/lpae-fixture.js';
import { SZ_1G, SZ_2M, SZ_4K, SZ_16K, SZ_32M, SZ_64K, SZ_512M } from './geometry.js';

/** A mapping the reference remembers: one leaf-sized or larger contiguous range. */
interface Range {
  iova: number;
  size: number;
  pa: number;
}

type Op =
  | { kind: 'map'; iova: number; size: number; pa: number }
  | { kind: 'unmap'; iova: number; size: number };

const granules = [
  { name: '4K', bitmap: SZ_4K | SZ_2M | SZ_1G, sizes: [SZ_4K, SZ_2M, SZ_1G] },
  { name: '16K', bitmap: SZ_16K | SZ_32M, sizes: [SZ_16K, SZ_32M] },
  { name: '64K', bitmap: SZ_64K | SZ_512M, sizes: [SZ_64K, SZ_512M] },
];

function opArb(sizes: number[]): fc.Arbitrary<Op> {
  const window = 2 * sizes[sizes.length - 1]!;
  const span = fc.record({
    unit: fc.constantFrom(...sizes),
    slot: fc.nat(),
    count: fc.integer({ min: 1, max: 4 }),
  });
  return fc.oneof(
    span.chain(({ unit, slot, count }) =>
      fc.record({
        kind: fc.constant('map' as const),
        iova: fc.constant((slot % (window / unit)) * unit),
        size: fc.constant(Math.min(count * unit, window - (slot % (window / unit)) * unit)),
        pa: fc.integer({ min: 0, max: 1024 }).map((k) => k * unit),
      }),
    ),
    span.map(({ unit, slot, count }) => {
      const iova = (slot % (window / unit)) * unit;
      return { kind: 'unmap' as const, iova, size: Math.min(count * unit, window - iova) };
    }),
  );
}

function lookup(ranges: Range[], iova: number): number | null {
  for (const r of ranges) if (iova >= r.iova && iova < r.iova + r.size) return r.pa + (iova - r.iova);
  return null;
}

const overlaps = (r: Range, iova: number, size: number) => r.iova < iova + size && iova < r.iova + r.size;

describe.each(granules)('random map/unmap agree with a reference map ($name)', ({ bitmap, sizes }) => {
  it('holds for every sequence', () => {
    fc.assert(
      fc.property(
        // Input sizes whose start level holds the largest block (32) or sits above it.
        fc.constantFrom(32, 40, 48),
        fc.array(opArb(sizes), { minLength: 1, maxLength: 25 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (ias, ops, probes) => {
          const f = lpaeFixture({ pgsizeBitmap: bitmap, ias, tableBytes: 32 * 2 ** 20 });
          const granule = sizes[0]!;
          const window = 2 * sizes[sizes.length - 1]!;
          let ranges: Range[] = [];
          for (const op of ops) {
            if (op.kind === 'map') {
              const clash = ranges.some((r) => overlaps(r, op.iova, op.size));
              let error: unknown;
              try {
                f.ops.map(op.iova, op.pa, op.size, IommuProt.READ | IommuProt.WRITE);
              } catch (e) {
                error = e;
              }
              // Mapping over anything mapped is EEXIST; otherwise it succeeds.
              expect(isVmmError(error, 'EEXIST')).toBe(clash);
              if (!clash) ranges.push({ iova: op.iova, size: op.size, pa: op.pa });
            } else {
              let error: unknown;
              let unmapped = 0;
              try {
                unmapped = f.ops.unmap(op.iova, op.size);
              } catch (e) {
                error = e;
              }
              if (error !== undefined) {
                // Refused only for a cut through a block, i.e. a leaf reaching outside the range.
                expect(isVmmError(error, 'EINVAL')).toBe(true);
                expect((error as Error).message).toMatch(/would cut/);
              } else {
                expect(unmapped).toBeGreaterThanOrEqual(0);
                expect(unmapped).toBeLessThanOrEqual(op.size);
                // A range that starts on a mapping always unmaps something.
                if (lookup(ranges, op.iova) !== null) expect(unmapped).toBeGreaterThan(0);
                const start = op.iova;
                const end = op.iova + unmapped;
                // Split reference ranges at the unmapped window; the table must agree page by page below.
                ranges = ranges.flatMap((r) => {
                  if (!overlaps(r, start, end - start)) return [r];
                  const out: Range[] = [];
                  if (r.iova < start) out.push({ iova: r.iova, size: start - r.iova, pa: r.pa });
                  if (r.iova + r.size > end)
                    out.push({ iova: end, size: r.iova + r.size - end, pa: r.pa + (end - r.iova) });
                  return out;
                });
              }
            }
            // Every page of every remembered range, its neighbours and random probes translate alike.
            const addresses = new Set<number>();
            for (const r of ranges) {
              addresses.add(r.iova);
              addresses.add(r.iova + r.size - 1);
              if (r.iova >= granule) addresses.add(r.iova - 1);
              addresses.add(r.iova + r.size);
            }
            for (const p of probes) addresses.add((p * granule + (p % granule)) % window);
            for (const iova of addresses) expect(f.ops.iovaToPhys(iova)).toBe(lookup(ranges, iova));
          }
          f.ops.free();
          expect(f.allocator.freeBytes).toBe(32 * 2 ** 20);
        },
      ),
      { numRuns: 60 },
    );
  });
});
