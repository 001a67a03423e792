import { describe, expect, it } from 'vitest';
import {
  chooseGranule,
  LpaeGeometry,
  SZ_1G,
  SZ_2M,
  SZ_4K,
  SZ_16K,
  SZ_32M,
  SZ_64K,
  SZ_512M,
} from './geometry.js';

describe('LPAE geometry (smmuv3-lpae.md §6.2)', () => {
  // [granule, ias, levels, start level, start-table entries]
  const table: [number, number, number, number, number][] = [
    [SZ_4K, 32, 3, 1, 4],
    [SZ_4K, 36, 3, 1, 64],
    [SZ_4K, 39, 3, 1, 512],
    [SZ_4K, 40, 4, 0, 2],
    [SZ_4K, 42, 4, 0, 8],
    [SZ_4K, 44, 4, 0, 32],
    [SZ_4K, 48, 4, 0, 512],
    [SZ_16K, 32, 2, 2, 128],
    [SZ_16K, 36, 2, 2, 2048],
    [SZ_16K, 40, 3, 1, 16],
    [SZ_16K, 44, 3, 1, 256],
    [SZ_16K, 48, 4, 0, 2],
    [SZ_64K, 32, 2, 2, 8],
    [SZ_64K, 40, 2, 2, 2048],
    [SZ_64K, 42, 2, 2, 8192],
    [SZ_64K, 44, 3, 1, 4],
    [SZ_64K, 48, 3, 1, 64],
  ];
  it.each(table)(
    'granule %i, ias %i: %i levels from level %i, %i start entries',
    (granule, ias, levels, start, entries) => {
      const g = new LpaeGeometry(granule, ias);
      expect(g.levels).toBe(levels);
      expect(g.startLevel).toBe(start);
      expect(g.entries[start]).toBe(entries);
      expect(g.pgdBytes).toBe(Math.max(entries * 8, 64));
    },
  );

  it('indexes the QEMU qtest IOVA 0x8080604567 as L0 1, L1 2, L2 3, L3 4 (§6.8)', () => {
    const g = new LpaeGeometry(SZ_4K, 48);
    expect([0, 1, 2, 3].map((l) => g.index(0x80_8060_4567, l))).toEqual([1, 2, 3, 4]);
    expect(g.blockSize.slice(1)).toEqual([SZ_1G, SZ_2M, SZ_4K]);
  });
});

describe('granule choice (Linux arm_lpae_restrict_pgsizes, §6.3)', () => {
  it('prefers the 4K CPU page and keeps its 2M/1G blocks', () => {
    expect(chooseGranule(SZ_4K | SZ_16K | SZ_64K | SZ_2M | SZ_32M | SZ_512M | SZ_1G)).toEqual({
      granule: SZ_4K,
      pgsizeBitmap: SZ_4K + SZ_2M + SZ_1G,
    });
  });
  it('takes the smallest larger granule when 4K is absent', () => {
    expect(chooseGranule(SZ_16K | SZ_64K | SZ_32M | SZ_512M)).toEqual({
      granule: SZ_16K,
      pgsizeBitmap: SZ_16K + SZ_32M,
    });
    expect(chooseGranule(SZ_64K | SZ_512M | SZ_2M)).toEqual({
      granule: SZ_64K,
      pgsizeBitmap: SZ_64K + SZ_512M,
    });
  });
  it('drops a 64G/4T block and copes with bits above 31', () => {
    expect(chooseGranule(SZ_64K + SZ_512M + 2 ** 42)).toEqual({
      granule: SZ_64K,
      pgsizeBitmap: SZ_64K + SZ_512M,
    });
  });
  it('offers nothing for sizes that are no granule', () => {
    expect(chooseGranule(SZ_2M | SZ_1G).granule).toBe(0);
    expect(chooseGranule(0x800).pgsizeBitmap).toBe(0);
  });
});
