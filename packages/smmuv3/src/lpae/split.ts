/**
 * Splitting a range into the pages a table supports (Linux `iommu_pgsize`): the largest page
 * that fits the remaining size and the alignment of both addresses, and how many of them to use
 * before a larger page becomes possible.
 */

/** One step of a split: `count` pages of `pgsize` from the current address. */
export interface Chunk {
  pgsize: number;
  count: number;
}

export class PgsizeSplitter {
  readonly minPgsize: number;
  private readonly sizesDesc: number[];
  /** Below this size only the smallest page fits, so no alignment search is needed. */
  private readonly secondPgsize: number;
  /**
   * Returned by every `split`, so splitting allocates nothing per page. Overwritten by the next
   * call: read it before calling anything else (tables of one geometry share a splitter).
   */
  private readonly chunk: Chunk = { pgsize: 0, count: 0 };

  constructor(pgsizes: readonly number[]) {
    this.sizesDesc = [...pgsizes].sort((a, b) => b - a);
    this.minPgsize = this.sizesDesc[this.sizesDesc.length - 1]!;
    this.secondPgsize = this.sizesDesc.length > 1 ? this.sizesDesc[this.sizesDesc.length - 2]! : Infinity;
  }

  /** `iova`, `pa` and `size` are multiples of the smallest page and `size` > 0. */
  split(iova: number, pa: number, size: number): Chunk {
    const chunk = this.chunk;
    if (size < this.secondPgsize) {
      chunk.pgsize = this.minPgsize;
      chunk.count = size / this.minPgsize;
      return chunk;
    }
    const sizes = this.sizesDesc;
    // The smallest page always qualifies, so the search ends at the latest on the last size.
    let pick = sizes.length - 1;
    for (let k = 0; k < sizes.length; k++) {
      const s = sizes[k]!;
      if (s <= size && iova % s === 0 && pa % s === 0) {
        pick = k;
        break;
      }
    }
    const pgsize = sizes[pick]!;
    let count = Math.floor(size / pgsize);
    if (pick > 0) {
      const larger = sizes[pick - 1]!;
      // Only worth stopping early when both addresses sit at the same offset in the larger page.
      const toBoundary = larger - (iova % larger);
      if ((iova - pa) % larger === 0 && toBoundary + larger <= size) count = toBoundary / pgsize;
    }
    chunk.pgsize = pgsize;
    chunk.count = count;
    return chunk;
  }
}
