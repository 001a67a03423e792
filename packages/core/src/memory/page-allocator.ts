import { hex, VmmError } from '../errors.js';
import type { GuestMemory } from './guest-memory.js';

export const PAGE_SIZE = 0x1000;

/**
 * Copied over every page `alloc` returns. A 4 KiB `GuestMemory.fill` copies from a view of its
 * pattern made per call; table builders allocate thousands of single pages, so each page is
 * zeroed by one plain copy from here instead (no allocation).
 */
const ZERO_PAGE = new Uint8Array(PAGE_SIZE);

/** Page states of `BitmapPageAllocator`. */
const FREE = 0;
const HEAD = 1;
const TAIL = 2;

/**
 * Where table memory comes from: guest drivers allocate CD tables and page tables through one
 * of these, so every table lives in guest RAM at a guest-physical address.
 */
export interface PageAllocator {
  /** Allocates `size` bytes (rounded up to 4 KiB) aligned to `align` (a power of two, at least 4 KiB), zeroed. */
  alloc(size: number, align?: number): number;
  /**
   * `true` when this allocator vouches that `alloc` zeroes what it returns, in the guest RAM the
   * tables are written to. Table builders zero a fresh table page themselves unless this is set
   * (a defence against allocators that hand out stale pages, where a stale entry would look
   * valid to a walker); the zeroing is then done once, here, instead of twice.
   */
  readonly zeroesPages?: boolean;
  /** Releases an allocation by the address `alloc` returned. */
  free(gpa: number): void;
}

export interface PageRegion {
  /** Guest-physical base of the region, 4 KiB aligned, inside RAM. */
  base: number;
  /** Size of the region in bytes, a multiple of 4 KiB. */
  size: number;
}

/**
 * A first-fit page allocator over one region of guest RAM. Allocations are naturally aligned
 * when asked (SMMUv3 tables must be aligned to their size) and zeroed, because a table page
 * with stale contents would hand the walker valid-looking descriptors.
 */
export class BitmapPageAllocator implements PageAllocator {
  /** `alloc` zeroes every page it returns, through the memory it was given. */
  readonly zeroesPages = true;
  /**
   * Per page: `FREE`, `HEAD` (the first page of an allocation) or `TAIL` (a later one). An
   * allocation is its head and the tails after it, so `free` needs no map of sizes.
   */
  private readonly used: Uint8Array;
  private freePages: number;
  /** Every page below this index is in use: first fit starts its search here, not at 0. */
  private firstFree = 0;

  constructor(
    private readonly memory: GuestMemory,
    private readonly region: PageRegion,
  ) {
    const { base, size } = region;
    if (base % PAGE_SIZE !== 0 || size % PAGE_SIZE !== 0 || size <= 0) {
      throw new VmmError(
        'EINVAL',
        `allocator region ${hex(base)}+${hex(size)} must be 4 KiB aligned and non-empty`,
      );
    }
    if (!memory.isAccessible(base, size, 'write')) {
      throw new VmmError('EFAULT', `allocator region ${hex(base)}+${hex(size)} is not writable guest RAM`);
    }
    this.used = new Uint8Array(size / PAGE_SIZE);
    this.freePages = this.used.length;
  }

  /** Bytes still free (not necessarily contiguous). */
  get freeBytes(): number {
    return this.freePages * PAGE_SIZE;
  }

  alloc(size: number, align = PAGE_SIZE): number {
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new VmmError('EINVAL', `allocation size must be a positive integer, got ${String(size)}`);
    }
    if (!Number.isSafeInteger(align) || align < PAGE_SIZE || (align & (align - 1)) !== 0 || align > 2 ** 30) {
      throw new VmmError(
        'EINVAL',
        `alignment must be a power of two from 4 KiB to 1 GiB, got ${String(align)}`,
      );
    }
    const pages = Math.ceil(size / PAGE_SIZE);
    const step = align / PAGE_SIZE;
    const { base } = this.region;
    const used = this.used;
    const firstAligned = (Math.ceil(base / align) * align - base) / PAGE_SIZE;
    // Still first fit (the lowest aligned run), without rescanning the used prefix each time:
    // table builders allocate thousands of pages one by one.
    const skip = Math.max(0, Math.ceil((this.firstFree - firstAligned) / step)) * step;
    for (let start = firstAligned + skip; start + pages <= used.length; start += step) {
      let free = true;
      for (let i = start + pages - 1; i >= start; i--) {
        if (used[i] !== FREE) {
          free = false;
          break;
        }
      }
      if (!free) continue;
      // A loop: the builtin fill costs more than the one or two pages a table takes.
      used[start] = HEAD;
      for (let i = start + 1; i < start + pages; i++) used[i] = TAIL;
      this.freePages -= pages;
      let first = this.firstFree;
      while (first < used.length && used[first] !== FREE) first++;
      this.firstFree = first;
      const gpa = base + start * PAGE_SIZE;
      for (let page = 0; page < pages; page++) this.memory.write(gpa + page * PAGE_SIZE, ZERO_PAGE);
      return gpa;
    }
    throw new VmmError(
      'ENOMEM',
      `no ${pages} free pages aligned to ${hex(align)} in ${hex(base)}+${hex(this.region.size)} (${this.freePages} pages free)`,
      { size, align },
    );
  }

  free(gpa: number): void {
    const start = (gpa - this.region.base) / PAGE_SIZE;
    const used = this.used;
    if (!Number.isInteger(start) || start < 0 || start >= used.length || used[start] !== HEAD) {
      throw new VmmError('ENOENT', `${hex(gpa)} is not the start of a live allocation`, { gpa });
    }
    used[start] = FREE;
    let end = start + 1;
    while (end < used.length && used[end] === TAIL) used[end++] = FREE;
    this.freePages += end - start;
    if (start < this.firstFree) this.firstFree = start;
  }
}
