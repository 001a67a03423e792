import { MapFlag } from '../protocol/constants.js';
import type { PageTranslation } from './translator.js';

/**
 * The last translations of whole 4 KiB pages through MAP/UNMAP domains, for DMA that walks
 * page after page. It exists for memory locality, not to skip work: a hit reads one 32-byte
 * entry, where the mapping tree's path reads about ten typed arrays at the mapping's slot, and
 * those lines are gone from the CPU caches after every page a DMA copies (the `dma-copy`
 * figure spent about 80 ns a page on those misses).
 *
 * It only holds what cannot change without the state saying so. A page is cached only when
 * one mapping covers all of it (so no reserved region shares it) and its output address is
 * below 2^53. Adding a mapping cannot change a translation that succeeded (MAP refuses
 * overlaps), so only losing one invalidates: UNMAP and an endpoint leaving its domain (also
 * on reset) call `invalidate()`. Faults are never cached, so every fault is still reported.
 */

/** Entries (direct-mapped); 128 KiB. Sequential pages get consecutive entries. */
const ENTRIES = 4096;
/** Per entry: IOVA page number, output page address, bytes from the page to the mapping's end, tag. */
const STRIDE = 4;
const MMIO = MapFlag.MMIO;
/**
 * tag = (epoch * 2^32 + endpoint) * 8 + the mapping's MAP flags (READ 1, WRITE 2, MMIO 4), exact while it stays below 2^53, so the
 * epoch counts to 2^18 before the cache is emptied and it starts over.
 */
const EPOCH_LIMIT = 2 ** 18;
const TWO_POW_20 = 2 ** 20;
const TWO_POW_32 = 2 ** 32;

export class PageCache {
  private readonly entries = new Float64Array(ENTRIES * STRIDE);
  /** Starts at 1: an empty entry (tag 0) matches no epoch. */
  private epoch = 1;

  /** Every cached translation may be wrong from now on. */
  invalidate(): void {
    if (++this.epoch === EPOCH_LIMIT) {
      this.entries.fill(0);
      this.epoch = 1;
    }
  }

  /**
   * Fills `out` for byte `offset` of IOVA page `page` (IOVA / 4096) when the page is cached for
   * this endpoint with the permission `need` (MapFlag.READ or MapFlag.WRITE); returns whether it did.
   */
  lookup(endpoint: number, page: number, offset: number, need: number, out: PageTranslation): boolean {
    const e = this.entries;
    const at = indexOfPage(page) * STRIDE;
    if (e[at] !== page) return false;
    const flags = e[at + 3]! - (this.epoch * TWO_POW_32 + endpoint) * 8;
    if (flags < 0 || flags >= 8 || (flags & need) === 0) return false;
    const pa = e[at + 1]! + offset;
    out.pa = pa;
    out.paLo = pa >>> 0;
    out.paHi = Math.floor(pa / TWO_POW_32);
    out.length = e[at + 2]! - offset;
    out.mmio = (flags & MMIO) !== 0;
    return true;
  }

  /**
   * Copies the addresses of consecutive cached pages, from IOVA page `firstPage` on, into
   * `pas[into..]`, at most `count`; returns how many, stopping at the first page that is not
   * cached for the endpoint with the permission `need`.
   */
  copyRun(
    endpoint: number,
    firstPage: number,
    count: number,
    need: number,
    pas: Float64Array,
    into: number,
  ): number {
    const e = this.entries;
    const tag = (this.epoch * TWO_POW_32 + endpoint) * 8;
    const upper = Math.floor(firstPage / TWO_POW_20);
    const low = firstPage - upper * TWO_POW_20;
    const start = indexOf(low, upper);
    // Consecutive pages have consecutive entries until the IOVA crosses a 4 GiB boundary.
    const n = Math.min(count, TWO_POW_20 - low);
    for (let i = 0; i < n; i++) {
      const at = ((start + i) & (ENTRIES - 1)) * STRIDE;
      const flags = e[at + 3]! - tag;
      if (e[at] !== firstPage + i || flags < 0 || flags >= 8 || (flags & need) === 0) return i;
      pas[into + i] = e[at + 1]!;
    }
    return n;
  }

  /**
   * Remembers that IOVA page `page` translates to `paPage` (its first byte, below
   * 2^53) under a mapping with MAP `flags`; `tail` is the bytes from the page's first byte to
   * the mapping's end.
   */
  insert(endpoint: number, page: number, paPage: number, tail: number, flags: number): void {
    const at = indexOfPage(page) * STRIDE;
    const e = this.entries;
    e[at] = page;
    e[at + 1] = paPage;
    e[at + 2] = tail;
    e[at + 3] = (this.epoch * TWO_POW_32 + endpoint) * 8 + (flags & 7);
  }
}

/**
 * Consecutive pages get consecutive entries; the page's upper bits (IOVA bits 32 and up) are
 * scattered over the index so buffers 4 GiB apart do not evict each other.
 */
function indexOf(low: number, upper: number): number {
  return (low + Math.imul(upper, 0x9e37_79b1)) & (ENTRIES - 1);
}

function indexOfPage(page: number): number {
  const upper = Math.floor(page / TWO_POW_20);
  return indexOf(page - upper * TWO_POW_20, upper);
}
