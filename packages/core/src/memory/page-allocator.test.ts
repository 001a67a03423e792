import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isVmmError } from '../errors.js';
import { GuestMemory } from './guest-memory.js';
import { BitmapPageAllocator, PAGE_SIZE } from './page-allocator.js';

function setup(size = 64 * PAGE_SIZE) {
  const memory = new GuestMemory();
  memory.addBank({ gpa: 0x4000_0000, size: 0x100_0000 });
  const allocator = new BitmapPageAllocator(memory, { base: 0x4000_1000, size });
  return { memory, allocator };
}

describe('BitmapPageAllocator', () => {
  it('returns zeroed, naturally aligned blocks inside its region', () => {
    const { memory, allocator } = setup();
    memory.fill(0x4000_1000, 64 * PAGE_SIZE, 0xaa);
    const table = allocator.alloc(0x10000, 0x10000);
    expect(table % 0x10000).toBe(0);
    expect(table).toBeGreaterThanOrEqual(0x4000_1000);
    expect(table + 0x10000).toBeLessThanOrEqual(0x4000_1000 + 64 * PAGE_SIZE);
    expect(memory.read(table, 0x10000).every((b) => b === 0)).toBe(true);
  });

  it('fails with ENOMEM when no aligned run is free, and recovers after free', () => {
    const { allocator } = setup(4 * PAGE_SIZE);
    const pages = [0, 1, 2, 3].map(() => allocator.alloc(PAGE_SIZE));
    expect(() => allocator.alloc(PAGE_SIZE)).toThrow(/ENOMEM/);
    allocator.free(pages[2]!);
    expect(allocator.alloc(PAGE_SIZE)).toBe(pages[2]);
  });

  it('rejects bad arguments with clear errors', () => {
    const { allocator } = setup();
    expect(() => allocator.alloc(0)).toThrow(/EINVAL/);
    expect(() => allocator.alloc(PAGE_SIZE, 0x1800)).toThrow(/power of two/);
    expect(() => allocator.free(0x1234_5000)).toThrow(/ENOENT/);
    const memory = new GuestMemory();
    expect(() => new BitmapPageAllocator(memory, { base: 0, size: PAGE_SIZE })).toThrow(/EFAULT/);
  });

  it('never hands out overlapping or misaligned blocks (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            pages: fc.integer({ min: 1, max: 8 }),
            alignLog: fc.integer({ min: 12, max: 16 }),
            free: fc.boolean(),
          }),
          {
            maxLength: 40,
          },
        ),
        (ops) => {
          const { allocator } = setup();
          const live = new Map<number, number>();
          for (const op of ops) {
            const align = 2 ** op.alignLog;
            try {
              const gpa = allocator.alloc(op.pages * PAGE_SIZE, align);
              expect(gpa % align).toBe(0);
              for (const [start, size] of live) {
                expect(gpa + op.pages * PAGE_SIZE <= start || start + size <= gpa).toBe(true);
              }
              live.set(gpa, op.pages * PAGE_SIZE);
            } catch (error) {
              expect(isVmmError(error, 'ENOMEM')).toBe(true);
            }
            if (op.free && live.size > 0) {
              const [first] = live.keys();
              allocator.free(first!);
              live.delete(first!);
            }
          }
          const used = [...live.values()].reduce((a, b) => a + b, 0);
          expect(allocator.freeBytes).toBe(64 * PAGE_SIZE - used);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('is first fit: every block is the lowest free aligned run (property)', () => {
    const base = 0x4000_1000;
    const total = 64;
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            pages: fc.integer({ min: 1, max: 6 }),
            alignLog: fc.integer({ min: 12, max: 15 }),
            freeIndex: fc.option(fc.nat(), { nil: undefined }),
          }),
          { maxLength: 60 },
        ),
        (ops) => {
          const memory = new GuestMemory();
          memory.addBank({ gpa: 0x4000_0000, size: (total + 1) * PAGE_SIZE });
          const allocator = new BitmapPageAllocator(memory, { base, size: total * PAGE_SIZE });
          const busy = new Uint8Array(total);
          const live: [number, number][] = [];
          for (const op of ops) {
            const align = 2 ** op.alignLog;
            // The reference: scan every aligned start from the bottom of the region.
            let expected: number | null = null;
            for (
              let gpa = Math.ceil(base / align) * align;
              gpa + op.pages * PAGE_SIZE <= base + total * PAGE_SIZE;
              gpa += align
            ) {
              const first = (gpa - base) / PAGE_SIZE;
              if (busy.subarray(first, first + op.pages).every((b) => b === 0)) {
                expected = gpa;
                break;
              }
            }
            if (expected === null) {
              expect(() => allocator.alloc(op.pages * PAGE_SIZE, align)).toThrow(/ENOMEM/);
            } else {
              expect(allocator.alloc(op.pages * PAGE_SIZE, align)).toBe(expected);
              busy.fill(1, (expected - base) / PAGE_SIZE, (expected - base) / PAGE_SIZE + op.pages);
              live.push([expected, op.pages]);
            }
            if (op.freeIndex !== undefined && live.length > 0) {
              const [gpa, pages] = live.splice(op.freeIndex % live.length, 1)[0]!;
              allocator.free(gpa);
              busy.fill(0, (gpa - base) / PAGE_SIZE, (gpa - base) / PAGE_SIZE + pages);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
