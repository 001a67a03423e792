import { DmaAccess, type GuestMemory, type MemoryBank } from '@vmmkit/core';
import { DmaError } from './registers.js';
import { createDmaPage, DMA_PAGE_SHIFT, DMA_PAGE_SIZE, type DmaTranslator } from './translator.js';

/** Pages translated per call: enough to amortise the call, few enough to waste little on a fault. */
export const DMA_AHEAD_PAGES = 32;

const PAGE = DMA_PAGE_SIZE;
const PAGE_MASK = DMA_PAGE_SIZE - 1;
const TWO_POW_20 = 2 ** 20;
const NO_BYTES = new Uint8Array(0);
const WRITE: DmaAccess = DmaAccess.WRITE;

/**
 * One side of a transfer (what the engine reads, or what it writes): a cursor over the 64-bit
 * IOVA as a 4 KiB page number and an offset (exact without BigInt), and the RAM behind the
 * cursor's page once `map()` found it.
 *
 * With a translator that has `translatePages`, `map()` translates up to 32 pages ahead and
 * checks each against the bank of the first, so the next pages cost one array read; a page in
 * another bank, or one that did not translate, is looked at alone when the cursor gets there,
 * and only then is its fault reported. Everything here lives for one transfer (`start`):
 * the guest may change its mappings between transfers.
 */
export class DmaSide {
  page = 0;
  offset = 0;
  /** Bytes of the bank holding the mapped page, and the index of that page's first byte in them. */
  bytes: Uint8Array = NO_BYTES;
  base = 0;
  /** The page `bytes`/`base` belong to; -1 before the first `map()`. */
  mapped = -1;
  /** The translator's fault reason for the page `map()` refused with DmaError.TRANSLATION. */
  faultReason = 0;

  private lastPage = 0;
  private bank: MemoryBank | null = null;
  /** For pages first..first+count-1: index of the page in `bank.bytes`, or -1 (map it alone). */
  private readonly bases = new Float64Array(DMA_AHEAD_PAGES);
  private first = 0;
  private count = 0;
  private readonly single = createDmaPage();

  constructor(private readonly access: DmaAccess) {}

  /** Puts the cursor at IOVA (`lo`, `hi`) for a transfer of `length` bytes, forgetting all else. */
  start(lo: number, hi: number, length: number): void {
    this.page = hi * TWO_POW_20 + (lo >>> DMA_PAGE_SHIFT);
    this.offset = lo & PAGE_MASK;
    this.lastPage = this.page + Math.floor((this.offset + length - 1) / PAGE);
    this.mapped = -1;
    this.bank = null;
    this.count = 0;
    this.bytes = NO_BYTES;
  }

  /** Moves on by at most the rest of the current page. */
  advance(bytes: number): void {
    const next = this.offset + bytes;
    if (next < PAGE) this.offset = next;
    else {
      this.page++;
      this.offset = 0;
    }
  }

  /** Low and high 32 bits of the cursor's IOVA (fault registers). */
  lo(): number {
    return ((this.page - this.hi() * TWO_POW_20) * PAGE + this.offset) >>> 0;
  }
  hi(): number {
    return Math.floor(this.page / TWO_POW_20) >>> 0;
  }

  /**
   * Finds the RAM behind the cursor's page (`bytes`, `base`); returns DmaError.NONE, or
   * TRANSLATION (with `faultReason`) or BUS when the page cannot be reached.
   */
  map(translator: DmaTranslator, endpoint: number, pasid: number, memory: GuestMemory): number {
    const index = this.page - this.first;
    if (index >= 0 && index < this.count) {
      const base = this.bases[index]!;
      if (base >= 0) {
        this.base = base;
        this.mapped = this.page;
        return DmaError.NONE;
      }
    }
    return this.mapAlone(translator, endpoint, pasid, memory);
  }

  private mapAlone(translator: DmaTranslator, endpoint: number, pasid: number, memory: GuestMemory): number {
    const page = this.page;
    const access = this.access;
    this.count = 0;
    let pa: number;
    try {
      const want = Math.min(this.lastPage - page + 1, DMA_AHEAD_PAGES);
      const got =
        translator.translatePages === undefined
          ? 0
          : translator.translatePages(endpoint, pasid, page, want, access, this.bases);
      // The engine does not trust a translator to count right: anything but 1..want is none.
      if (got >= 1 && got <= want) {
        pa = this.bases[0]!;
        this.first = page;
        this.count = Math.floor(got);
      } else {
        // Not translated ahead (or no batch call): ask for this page alone, which reports the
        // fault now that the device reaches it.
        const single = this.single;
        if (!translator.translatePage(endpoint, pasid, page, access, single)) {
          this.faultReason = single.fault;
          return DmaError.TRANSLATION;
        }
        pa = single.pa;
      }
    } catch {
      // A translator must not throw; if one does, the engine sees a refused page, not a crash.
      this.count = 0;
      this.faultReason = 0;
      return DmaError.TRANSLATION;
    }
    const bank = this.bankOf(pa, memory);
    if (bank === null) {
      this.count = 0;
      return DmaError.BUS;
    }
    this.bank = bank;
    this.bytes = bank.bytes;
    this.base = pa - bank.gpa;
    this.mapped = page;
    // Pages translated ahead in this bank keep their index; the rest are mapped alone later.
    const bases = this.bases;
    const gpa = bank.gpa;
    const lastOffset = bank.size - PAGE;
    for (let i = 0; i < this.count; i++) bases[i] = pageIndex(bases[i]! - gpa, lastOffset);
    return DmaError.NONE;
  }

  /** The RAM bank (allowing this side's access) holding the whole page at `pa`, or null. */
  private bankOf(pa: number, memory: GuestMemory): MemoryBank | null {
    const last = this.bank;
    if (last !== null && pageIndex(pa - last.gpa, last.size - PAGE) >= 0) return last;
    // ramBank refuses fractions and addresses past RAM; the page must also be aligned.
    const bank = memory.ramBank(pa, PAGE, this.access === WRITE ? 'write' : 'read');
    return bank !== null && pageIndex(pa - bank.gpa, bank.size - PAGE) >= 0 ? bank : null;
  }
}

/**
 * `offset` (a page address minus its bank's address) when it is where a whole page of the bank
 * starts (`lastOffset`: the bank's size minus a page), else -1: outside the bank, unaligned, or
 * not an integer. Banks are 4 KiB-aligned, so the offset's alignment is the address's.
 */
function pageIndex(offset: number, lastOffset: number): number {
  return offset >= 0 && offset <= lastOffset && (offset & PAGE_MASK) === 0 && Number.isInteger(offset)
    ? offset
    : -1;
}
