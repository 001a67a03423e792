/**
 * A direct-mapped IOTLB in typed arrays (perf-limits.md §3: Float64 tag, Int32 ASID, Float64 PA).
 *
 * Entries are keyed like an SMMU's stage-1 TLB: (ASID, VA), holding the leaf's size and level.
 * A block or a 16K/64K page is stored as the 4 KiB pieces that were used, each remembering the
 * whole mapping (base and size), so invalidation by address drops every piece of a mapping it
 * touches. Entries leave only through the invalidation commands (or by being overwritten, which
 * a cache may always do): a guest that forgets a TLBI keeps seeing the old translation.
 */
import { POW2 } from './walk.js';

const PAGE = 4096;
/** Above this many pages a range invalidation scans the whole array instead of probing. */
const PROBE_LIMIT = 64;

/** The ASID's contribution to the slot index (kept in S1Context so a hit does not recompute it). */
export function tlbHashOf(asid: number): number {
  return asid * 0x9e37;
}

export class Iotlb {
  readonly size: number;
  readonly mask: number;
  /** 4 KiB virtual page number, −1 when empty. */
  readonly vpn: Float64Array;
  readonly asid: Int32Array;
  /** Output address of the 4 KiB piece. */
  readonly pa: Float64Array;
  /** Permission bits (unprivileged r/w/x = bits 0..2, privileged = bits 3..5). */
  readonly perm: Uint8Array;
  /** log2 of the whole mapping's size. */
  readonly shift: Uint8Array;
  readonly level: Int8Array;
  /** Size of the whole mapping (2^shift), kept so a hit needs no exponent table. */
  readonly pageSize: Float64Array;
  /** VA of the start of the whole mapping. */
  readonly base: Float64Array;
  readonly global: Uint8Array;
  /** Entries that are pieces of mappings larger than 4 KiB, or global: they defeat probing. */
  private wide = 0;

  constructor(entries: number) {
    this.size = entries;
    this.mask = entries - 1;
    this.vpn = new Float64Array(entries).fill(-1);
    this.asid = new Int32Array(entries);
    this.pa = new Float64Array(entries);
    this.perm = new Uint8Array(entries);
    this.shift = new Uint8Array(entries);
    this.level = new Int8Array(entries);
    this.pageSize = new Float64Array(entries);
    this.base = new Float64Array(entries);
    this.global = new Uint8Array(entries);
  }

  /** Slot of a (vpn, asid) pair; `vpn` may exceed 2^32 (only its low bits matter here). */
  slot(vpn: number, asid: number): number {
    return (vpn ^ tlbHashOf(asid)) & this.mask;
  }

  private isWide(s: number): boolean {
    return this.shift[s]! > 12 || this.global[s] === 1;
  }

  /** Stores the 4 KiB piece of a walked mapping that contains `iova`. */
  fill(
    iova: number,
    asid: number,
    pa: number,
    perm: number,
    shift: number,
    level: number,
    global: boolean,
  ): void {
    const vpn = Math.floor(iova / PAGE);
    const s = this.slot(vpn, asid);
    if (this.vpn[s] !== -1 && this.isWide(s)) this.wide--;
    const offset = iova - vpn * PAGE;
    this.vpn[s] = vpn;
    this.asid[s] = asid;
    this.pa[s] = pa - offset;
    this.perm[s] = perm;
    this.shift[s] = shift;
    this.level[s] = level;
    this.pageSize[s] = POW2[shift]!;
    this.base[s] = iova - (iova % POW2[shift]!);
    this.global[s] = global ? 1 : 0;
    if (this.isWide(s)) this.wide++;
  }

  private drop(s: number): void {
    if (this.isWide(s)) this.wide--;
    this.vpn[s] = -1;
  }

  /** TLBI_NH_ALL / TLBI_NSNH_ALL. */
  invalidateAll(): void {
    this.vpn.fill(-1);
    this.wide = 0;
  }

  /** TLBI_NH_ASID: non-global entries of `asid`. */
  invalidateAsid(asid: number): void {
    for (let s = 0; s < this.size; s++) {
      if (this.vpn[s] !== -1 && this.asid[s] === asid && this.global[s] === 0) this.drop(s);
    }
  }

  /**
   * TLBI_NH_VA / TLBI_NH_VAA: entries whose mapping overlaps [start, start + length) and whose
   * ASID is `asid` (or that are global); `asid` −1 matches every ASID (VAA).
   */
  invalidateRange(asid: number, start: number, length: number): void {
    if (this.size === 0) return;
    const end = start + length;
    if (asid >= 0 && this.wide === 0 && length <= PROBE_LIMIT * PAGE) {
      // Only 4 KiB, ASID-tagged entries exist: each page of the range has exactly one possible slot.
      for (let va = start - (start % PAGE); va < end; va += PAGE) {
        const vpn = va / PAGE;
        const s = this.slot(vpn, asid);
        if (this.vpn[s] === vpn && this.asid[s] === asid) this.drop(s);
      }
      return;
    }
    for (let s = 0; s < this.size; s++) {
      if (this.vpn[s] === -1) continue;
      if (asid >= 0 && this.asid[s] !== asid && this.global[s] === 0) continue;
      const base = this.base[s]!;
      if (base < end && base + POW2[this.shift[s]!]! > start) this.drop(s);
    }
  }

  /** Live entries (for tests and statistics). */
  count(): number {
    let n = 0;
    for (let s = 0; s < this.size; s++) if (this.vpn[s] !== -1) n++;
    return n;
  }
}
