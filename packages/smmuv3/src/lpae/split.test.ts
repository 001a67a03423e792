import { describe, expect, it } from 'vitest';
import { SZ_1G, SZ_2M, SZ_4K } from './geometry.js';
import { PgsizeSplitter } from './split.js';

describe('page-size split (Linux iommu_pgsize)', () => {
  const splitter = new PgsizeSplitter([SZ_4K, SZ_2M, SZ_1G]);
  const at = (iova: number, pa: number, size: number) => ({ ...splitter.split(iova, pa, size) });

  it('uses small pages only up to the next boundary where a larger page fits', () => {
    expect(at(SZ_2M - 2 * SZ_4K, SZ_2M - 2 * SZ_4K, SZ_2M + 3 * SZ_4K)).toEqual({ pgsize: SZ_4K, count: 2 });
    expect(at(SZ_2M, SZ_2M, SZ_2M + SZ_4K)).toEqual({ pgsize: SZ_2M, count: 1 });
    expect(at(SZ_1G - SZ_2M, SZ_1G - SZ_2M, SZ_1G + SZ_2M)).toEqual({ pgsize: SZ_2M, count: 1 });
  });

  it('keeps small pages when the addresses sit at different offsets of the larger page', () => {
    expect(at(0, SZ_4K, 2 * SZ_2M)).toEqual({ pgsize: SZ_4K, count: 1024 });
  });

  it('keeps small pages when the rest cannot hold a larger one', () => {
    expect(at(SZ_2M - SZ_4K, SZ_2M - SZ_4K, SZ_2M)).toEqual({ pgsize: SZ_4K, count: 512 });
    expect(at(0, 0, 3 * SZ_4K)).toEqual({ pgsize: SZ_4K, count: 3 });
  });

  it('takes as many large pages as fit', () => {
    expect(at(0, 0, 3 * SZ_1G + SZ_4K)).toEqual({ pgsize: SZ_1G, count: 3 });
  });
});
