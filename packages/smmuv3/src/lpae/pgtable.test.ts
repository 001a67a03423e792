import { createIotlbGather, IommuProt, type IoPgtableCfg, isVmmError } from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import {
  dirtyAllocator,
  guestRam,
  leafOf,
  lpaeFixture,
  RecordingTlb,
  referenceWalk,
} from '../testing/lpae-fixture.js';
import { armLpaeS1Format } from './format.js';
import { SZ_1G, SZ_2M, SZ_4K, SZ_16K, SZ_32M, SZ_64K, SZ_512M } from './geometry.js';

const { READ, WRITE, CACHE, NOEXEC, MMIO, PRIV } = IommuProt;
const RW_NX_CACHE = READ | WRITE | NOEXEC | CACHE;

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('descriptors are bit-exact (smmuv3-lpae.md §6.5)', () => {
  const f = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G });
  f.ops.map(0, 0, SZ_4K, RW_NX_CACHE);
  f.ops.map(SZ_1G, SZ_1G, SZ_2M, RW_NX_CACHE);
  f.ops.map(2 * SZ_1G, 2 * SZ_1G, SZ_1G, RW_NX_CACHE);

  it('4K page RW|NOEXEC|CACHE at level 3 is 0x0060000000000f47', () => {
    expect(leafOf(f, 0)).toMatchObject({ level: 3, pte: 0x0060000000000f47n });
  });
  it('2M block at 1G (level 2) is 0x0060000040000f45', () => {
    expect(leafOf(f, SZ_1G + 42)).toMatchObject({ level: 2, pte: 0x0060000040000f45n });
  });
  it('1G block at 2G (level 1) is 0x0060000080000f45', () => {
    expect(leafOf(f, 2 * SZ_1G + 0x1234_5678)).toMatchObject({ level: 1, pte: 0x0060000080000f45n });
  });
  it('table entries are the next table address | 0b11', () => {
    const arm = f.cfg.vendor.arm!;
    for (const step of referenceWalk(f.memory, arm.ttbr, SZ_4K, 48, 0).slice(0, -1)) {
      expect(step.pte & 0xfffn).toBe(3n);
      expect(step.pte >> 48n).toBe(0n);
    }
  });

  it.each([
    ['WRITE only: AP RW, SH OS, AttrIndx 0', WRITE, 0xe43n],
    ['READ|CACHE: AP[2] read-only, SH IS, AttrIndx 1', READ | CACHE, 0xfc7n],
    ['READ|WRITE|MMIO: AttrIndx 2 (Device), SH OS', READ | WRITE | MMIO, 0xe4bn],
    ['READ|WRITE|PRIV: no AP[1]', READ | WRITE | PRIV, 0xe03n],
    ['READ|MMIO|CACHE: MMIO wins the index, CACHE still picks IS', READ | MMIO | CACHE, 0xfcbn],
  ])('%s', (_name, prot, low) => {
    const g = lpaeFixture({ pgsizeBitmap: SZ_4K });
    const pa = 0xabc_d123_4000;
    g.ops.map(0x5000, pa, SZ_4K, prot);
    expect(leafOf(g, 0x5000)!.pte).toBe(BigInt(pa) | low);
  });

  it('places PA bits [47:32] in the high half and NOEXEC in bits [54:53]', () => {
    const g = lpaeFixture({ pgsizeBitmap: SZ_64K | SZ_512M });
    g.ops.map(0x7_0000, 0xffff_ffff_0000, SZ_64K, READ | NOEXEC);
    expect(leafOf(g, 0x7_0000)).toMatchObject({ level: 3, pte: 0x0060ffffffff0ec3n });
    expect(g.ops.iovaToPhys(0x7_abcd)).toBe(0xffff_ffff_abcd);
  });

  it('walks the QEMU qtest IOVA 0x8080604567 through L0 1, L1 2, L2 3, L3 4 (§6.8, §7.4)', () => {
    const g = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, oas: 44 });
    g.ops.map(0x80_8060_4000, 0x4ecb_a000, SZ_4K, READ | WRITE);
    const steps = referenceWalk(g.memory, g.cfg.vendor.arm!.ttbr, SZ_4K, 48, 0x80_8060_4567);
    expect(steps.map((s) => s.level)).toEqual([0, 1, 2, 3]);
    const offsets = steps.map(
      (s, i) => s.gpa - (i === 0 ? g.cfg.vendor.arm!.ttbr : Number(steps[i - 1]!.pte & ~0xfffn)),
    );
    expect(offsets).toEqual([8, 16, 24, 32]);
    expect(g.ops.iovaToPhys(0x80_8060_4567)).toBe(0x4ecb_a567);
  });
});

/** Linux io-pgtable self-test scenarios (drivers/iommu/io-pgtable-arm-selftests.c, §9.1). */
describe.each([
  ['4K', SZ_4K | SZ_2M | SZ_1G],
  ['16K', SZ_16K | SZ_32M],
  ['64K', SZ_64K | SZ_512M],
])('Linux self-test, %s granule', (_name, bitmap) => {
  const sizes = [32, 36, 40, 42, 44, 48];
  const configs = sizes.flatMap((oas, j) => sizes.slice(0, j + 1).map((ias) => [ias, oas] as const));
  it.each(configs)('ias %i, oas %i', (ias, oas) => {
    const f = lpaeFixture({ pgsizeBitmap: bitmap, ias, oas });
    const { ops } = f;
    const pgsizes = [SZ_4K, SZ_16K, SZ_64K, SZ_2M, SZ_32M, SZ_512M, SZ_1G].filter(
      (s) => f.cfg.pgsizeBitmap & s,
    );
    // 1. An empty table translates nothing.
    for (const iova of [42, SZ_1G + 42, 2 * SZ_1G + 42]) expect(ops.iovaToPhys(iova)).toBeNull();
    // 2. Identity-map each size at n × 1G; a second mapping over it fails.
    pgsizes.forEach((size, n) => {
      const iova = n * SZ_1G;
      ops.map(iova, iova, size, RW_NX_CACHE);
      expect(
        isVmmError(
          thrown(() => ops.map(iova, iova + size, size, READ | NOEXEC)),
          'EEXIST',
        ),
      ).toBe(true);
      expect(ops.iovaToPhys(iova + 42)).toBe(iova + 42);
    });
    // 3. (current kernels) cutting a page out of a block is refused and changes nothing.
    const min = pgsizes[0]!;
    const blockIova = SZ_1G;
    expect(
      isVmmError(
        thrown(() => ops.unmap(blockIova + min, min)),
        'EINVAL',
      ),
    ).toBe(true);
    expect(ops.iovaToPhys(blockIova + min + 42)).toBe(blockIova + min + 42);
    // 4. Unmap everything, then map it back write-only.
    pgsizes.forEach((size, n) => {
      const iova = n * SZ_1G;
      expect(ops.unmap(iova, size)).toBe(size);
      expect(ops.iovaToPhys(iova + 42)).toBeNull();
      ops.map(iova, iova, size, WRITE);
      expect(ops.iovaToPhys(iova + 42)).toBe(iova + 42);
    });
    // 5. The largest page at the very top of the input range.
    const top = pgsizes[pgsizes.length - 1]!;
    const topIova = 2 ** ias - top;
    if (topIova >= pgsizes.length * SZ_1G) {
      ops.map(topIova, 0, top, RW_NX_CACHE);
      expect(ops.iovaToPhys(topIova + top - 1)).toBe(top - 1);
      expect(ops.unmap(topIova, top)).toBe(top);
    }
    ops.free();
    expect(f.allocator.freeBytes).toBe(16 * 2 ** 20);
  });
});

describe('map and unmap', () => {
  it('splits a range into the largest pages alignment allows (Linux iommu_pgsize)', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G });
    // [2M-8K, 4M+4K): two pages, one 2M block, one page.
    f.ops.map(SZ_2M - 2 * SZ_4K, 0x1_0000_0000 - 2 * SZ_4K, SZ_2M + 3 * SZ_4K, READ);
    expect(leafOf(f, SZ_2M - SZ_4K)!.level).toBe(3);
    expect(leafOf(f, SZ_2M + 0x1234)).toMatchObject({ level: 2 });
    expect(leafOf(f, 2 * SZ_2M)!.level).toBe(3);
    expect(f.ops.iovaToPhys(2 * SZ_2M + 5)).toBe(0x1_0000_0000 + SZ_2M + 5);
    // A PA that is not 2M-aligned relative to the IOVA forces pages.
    f.ops.map(8 * SZ_2M, 0x1000, SZ_2M, READ);
    expect(leafOf(f, 8 * SZ_2M)!.level).toBe(3);
    expect(f.ops.iovaToPhys(9 * SZ_2M - 1)).toBe(SZ_2M + 0xfff);
  });

  it('crosses leaf-table boundaries within one call', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_16K });
    const start = SZ_32M - 4 * SZ_16K;
    f.ops.map(start, 0, 8 * SZ_16K, READ);
    for (let i = 0; i < 8; i++) expect(f.ops.iovaToPhys(start + i * SZ_16K + 7)).toBe(i * SZ_16K + 7);
    expect(f.ops.unmap(start, 8 * SZ_16K)).toBe(8 * SZ_16K);
    expect(f.ops.iovaToPhys(start)).toBeNull();
  });

  it('reports each unmapped leaf to addPage and stops at the first hole (Linux __arm_lpae_unmap)', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G });
    f.ops.map(0x10_0000, 0, 3 * SZ_4K, READ | WRITE);
    f.ops.map(0x10_4000, 0x4000, SZ_4K, READ | WRITE);
    f.tlb.take();
    const gather = createIotlbGather();
    expect(f.ops.unmap(0x10_0000, 5 * SZ_4K, gather)).toBe(3 * SZ_4K);
    expect(f.tlb.take()).toEqual(
      [0, 1, 2].map((i) => ({ op: 'addPage', iova: 0x10_0000 + i * SZ_4K, granule: SZ_4K })),
    );
    expect(gather).toEqual({ start: 0x10_0000, end: 0x10_2fff, pgsize: SZ_4K });
    expect(f.ops.iovaToPhys(0x10_4000)).toBe(0x4000);
    expect(f.ops.unmap(0x20_0000, SZ_4K)).toBe(0);
    expect(f.tlb.take()).toEqual([]);
  });

  it('unmapping a block-sized range over pages drops the whole table with one walk flush', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G });
    const free0 = f.allocator.freeBytes;
    f.ops.map(SZ_2M, SZ_2M, SZ_4K, READ);
    f.ops.map(SZ_2M + 9 * SZ_4K, 0, SZ_4K, READ);
    expect(f.allocator.freeBytes).toBe(free0 - 3 * SZ_4K); // L1, L2 and L3 tables
    f.tlb.take();
    expect(f.ops.unmap(SZ_2M, SZ_2M)).toBe(SZ_2M);
    expect(f.tlb.take()).toEqual([{ op: 'flushWalk', iova: SZ_2M, size: SZ_2M, granule: SZ_4K }]);
    expect(f.allocator.freeBytes).toBe(free0 - 2 * SZ_4K);
    expect(f.ops.iovaToPhys(SZ_2M + 9 * SZ_4K)).toBeNull();
  });

  it('replaces an emptied leaf table by a block, flushing the walk first', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_64K | SZ_512M });
    f.ops.map(SZ_512M, 0, SZ_64K, READ);
    f.ops.unmap(SZ_512M, SZ_64K);
    f.tlb.take();
    const before = f.allocator.freeBytes;
    f.ops.map(SZ_512M, SZ_512M, SZ_512M, READ);
    expect(f.tlb.take()).toEqual([{ op: 'flushWalk', iova: SZ_512M, size: SZ_512M, granule: SZ_64K }]);
    expect(f.allocator.freeBytes).toBe(before + SZ_64K);
    expect(leafOf(f, SZ_512M + 5)).toMatchObject({ level: 2 });
  });

  it('refuses a block over a table that still maps pages, and takes back the whole call', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G });
    f.ops.map(SZ_2M + SZ_4K, 0, SZ_4K, READ);
    const error = thrown(() => f.ops.map(0, 0, 2 * SZ_2M, READ | WRITE));
    expect(isVmmError(error, 'EEXIST')).toBe(true);
    expect(f.ops.iovaToPhys(0)).toBeNull();
    expect(f.ops.iovaToPhys(SZ_2M + SZ_4K)).toBe(0);
    expect(f.ops.iovaToPhys(SZ_2M)).toBeNull();
  });

  it('refuses to cut a block even when the cut comes after other entries', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M });
    f.ops.map(SZ_2M - SZ_4K, 0, SZ_4K, READ);
    f.ops.map(SZ_2M, SZ_2M, SZ_2M, READ);
    const error = thrown(() => f.ops.unmap(SZ_2M - SZ_4K, 2 * SZ_4K));
    expect(isVmmError(error, 'EINVAL')).toBe(true);
    expect((error as Error).message).toMatch(/0x200000 block at 0x200000/);
    expect(f.ops.iovaToPhys(SZ_2M - SZ_4K)).toBe(0);
  });

  it('answers ENOMEM when table pages run out and leaves nothing mapped', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, tableBytes: 4 * SZ_4K });
    f.ops.map(0, 0, SZ_4K, READ); // the L1, L2 and L3 tables take the last three pages
    expect(f.allocator.freeBytes).toBe(0);
    const error = thrown(() => f.ops.map(SZ_2M - SZ_4K, 0, 2 * SZ_4K, READ));
    expect(isVmmError(error, 'ENOMEM')).toBe(true);
    expect(f.ops.iovaToPhys(SZ_2M - SZ_4K)).toBeNull();
  });

  it('rejects bad arguments with a clear VmmError', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, ias: 40, oas: 40 });
    expect(() => f.ops.map(0x800, 0, SZ_4K, READ)).toThrow(/multiples of the 0x1000 granule/);
    expect(() => f.ops.map(0, 0, 0, READ)).toThrow(/EINVAL/);
    expect(() => f.ops.map(2 ** 40 - SZ_4K, 0, 2 * SZ_4K, READ)).toThrow(/40-bit input/);
    expect(() => f.ops.map(0, 2 ** 40, SZ_4K, READ)).toThrow(/40-bit output/);
    expect(() => f.ops.map(0, 0, SZ_4K, NOEXEC)).toThrow(/neither READ nor WRITE/);
    expect(() => f.ops.unmap(0x10, SZ_4K)).toThrow(/EINVAL/);
    expect(f.ops.iovaToPhys(2 ** 40)).toBeNull();
    expect(f.ops.iovaToPhys(-1)).toBeNull();
    f.ops.free();
    expect(() => f.ops.map(0, 0, SZ_4K, READ)).toThrow(/freed/);
  });

  it('never walks a table after freeing it, even one freed from the start level', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, ias: 32 });
    f.ops.map(0x5000, 0x7000, SZ_4K, READ);
    expect(f.ops.iovaToPhys(0x5000)).toBe(0x7000);
    // 1G entries live in the 32-bit table's start level: this frees the L2 and L3 tables.
    expect(f.ops.unmap(0, SZ_1G)).toBe(SZ_1G);
    expect(f.ops.iovaToPhys(0x5000)).toBeNull();
    expect(f.ops.unmap(0x5000, SZ_4K)).toBe(0);
    f.ops.map(0x5000, 0x9000, SZ_4K, READ);
    expect(f.ops.iovaToPhys(0x5000)).toBe(0x9000);
  });

  it('writes every table page (all entries invalid) before publishing it, whatever the allocator left', () => {
    const { memory, allocator } = guestRam(16 * 2 ** 20);
    // An allocator that hands out pages full of 0xff: every stale entry would look like a table.
    const dirty = dirtyAllocator(memory, allocator);
    const cfg: IoPgtableCfg = {
      ias: 48,
      oas: 48,
      pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G,
      coherentWalk: true,
      tlb: new RecordingTlb(),
      memory,
      allocator: dirty,
      vendor: {},
    };
    const ops = armLpaeS1Format.alloc(cfg);
    ops.map(0x1234_5000, 0x7000, SZ_4K, READ);
    // Only the entries on the path of 0x1234_5000 are set; every other address is unmapped.
    expect(referenceWalk(memory, cfg.vendor.arm!.ttbr, SZ_4K, 48, 0x1234_5000)).toHaveLength(4);
    for (const iova of [0, 0x1234_4000, 0x1234_6000, 0x1240_0000, 0x8000_0000, 2 ** 47]) {
      expect(ops.iovaToPhys(iova)).toBeNull();
    }
    expect(ops.iovaToPhys(0x1234_5008)).toBe(0x7008);
  });

  it('free returns every table page', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_16K | SZ_32M });
    const total = 16 * 2 ** 20;
    for (let i = 0; i < 40; i++) f.ops.map(i * 3 * SZ_32M + i * SZ_16K, 0, SZ_16K, READ);
    f.ops.map(200 * SZ_32M, 0, SZ_32M, READ);
    expect(f.allocator.freeBytes).toBeLessThan(total - 40 * SZ_16K);
    f.ops.free();
    expect(f.allocator.freeBytes).toBe(total);
  });
});
