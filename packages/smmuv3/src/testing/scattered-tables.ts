/**
 * The benchmark tables of perf-limits.md §2, shared by the smmuv3 benchmarks and the report in
 * bench/: one 4-level, 4K-granule Arm LPAE stage-1 table mapping 1 GiB of IOVA with 4K pages
 * (L0, L1, L2 and 512 L3 tables scattered at random over a 16 MiB bank, so walks miss the
 * caches as they would in a real guest), a CD pointing at it, an STE selecting that CD, and the
 * bare walk loop over the same tables with plain numbers that the model is compared with.
 */
import { GuestMemory } from '@vmmkit/core';
import { encodeSte } from '../codec/ste.js';
import { linuxCd, writeCd } from './host-tables.js';

export const SCATTERED_RAM = 0x4000_0000;
const RAM_SIZE = 16 * 1024 * 1024;
/** IOVA of the first mapped page; the mapping covers [SCATTERED_IOVA, SCATTERED_IOVA + 1 GiB). */
export const SCATTERED_IOVA = 0x4000_0000;
export const SCATTERED_PAGES = (1 << 30) / 4096;
/** Output address of the first mapped page: 4 GiB, so every PA needs more than 32 bits. */
export const SCATTERED_PA = 2 ** 32;
export const SCATTERED_ASID = 1;

export interface ScatteredTables {
  memory: GuestMemory;
  /** The whole bank as 32-bit words (descriptor halves), for bare loops. */
  words: Uint32Array;
  /** Guest-physical address of the L0 table. */
  l0: number;
  /** Guest-physical address of the CD (stage 1 of stream 0). */
  cd: number;
  /** An STE selecting that CD (`Smmuv3.setStreamConfig(0, ste)`). */
  ste: Uint8Array;
  /** The table pages' slots (bank page numbers) in allocation order. */
  slots: number[];
  /** The deterministic generator the tables were shuffled with, for inputs that follow. */
  random: () => number;
}

/** xorshift32: the same data on every run and every machine. */
export function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

export function scatteredTables(seed = 0x2545f491): ScatteredTables {
  const random = xorshift(seed);
  const memory = new GuestMemory();
  const bank = memory.addBank({ gpa: SCATTERED_RAM, size: RAM_SIZE });
  const words = new Uint32Array(bank.buffer!, bank.bufferOffset, RAM_SIZE / 4);
  // Table pages in a random order over the bank (the first pages hold the CD).
  const slots = Array.from({ length: RAM_SIZE / 4096 - 8 }, (_, i) => i + 8);
  for (let i = slots.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [slots[i], slots[j]] = [slots[j]!, slots[i]!];
  }
  const pageAt = (n: number) => SCATTERED_RAM + slots[n]! * 4096;
  const put = (at: number, lo: number, hi: number) => {
    words[(at - SCATTERED_RAM) / 4] = lo >>> 0;
    words[(at - SCATTERED_RAM) / 4 + 1] = hi >>> 0;
  };
  const l0 = pageAt(0);
  const l1 = pageAt(1);
  const l2 = pageAt(2);
  put(l0 + 8 * ((SCATTERED_IOVA / 2 ** 39) & 511), l1 | 3, 0);
  put(l1 + 8 * ((SCATTERED_IOVA / 2 ** 30) & 511), l2 | 3, 0);
  for (let t = 0; t < 512; t++) {
    const l3 = pageAt(3 + t);
    put(l2 + 8 * t, l3 | 3, 0);
    for (let i = 0; i < 512; i++) {
      // AF | SH=inner shareable | AP[1] | nG | page: what Linux io-pgtable writes for a RW mapping.
      const page = t * 512 + i;
      put(l3 + 8 * i, ((page * 4096) | 0xf43) >>> 0, SCATTERED_PA / 2 ** 32);
    }
  }
  const cd = SCATTERED_RAM;
  // The CD Linux writes for such a table (4K granule, 48-bit input).
  writeCd(memory, cd, linuxCd({ inputBits: 48, granuleShift: 12, root: l0 }, SCATTERED_ASID));
  const ste = encodeSte({ valid: true, config: 5, s1ContextPtr: cd, s1cir: 1, s1cor: 1, s1csh: 3 });
  return { memory, words, l0, cd, ste, slots, random };
}

/** `count` random IOVAs over the first `pages` mapped pages, at 8-byte aligned offsets. */
export function scatteredIovas(random: () => number, count: number, pages = SCATTERED_PAGES): Float64Array {
  const iovas = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    iovas[i] = SCATTERED_IOVA + Math.floor(random() * pages) * 4096 + (i & 0xff8);
  }
  return iovas;
}

const LEVEL_DIV = new Float64Array([2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12]);
const TWO32 = 4294967296;

/**
 * The bare walk loop of perf-limits.md §2 ("number"): per level an index, one Uint32-pair read
 * and the valid/type check; at the leaf the AF and AP[2] checks and the PA. -1 on any fault.
 */
export function bareLpaeWalk(words: Uint32Array, l0: number, iova: number, write: number): number {
  let table = l0;
  for (let level = 0; level < 4; level++) {
    const at = (table - SCATTERED_RAM) / 4 + (Math.floor(iova / LEVEL_DIV[level]!) & 511) * 2;
    const lo = words[at]!;
    const hi = words[at + 1]!;
    if ((lo & 3) !== 3) return -1;
    const next = (hi & 0xffff) * TWO32 + ((lo & 0xfffff000) >>> 0);
    if (level < 3) {
      table = next;
      continue;
    }
    if ((lo & 0x400) === 0 || (write && lo & 0x80)) return -1;
    return next + (iova % 4096);
  }
  return -1;
}

/** The bare IOTLB baseline: a direct-mapped cache of plain typed arrays holding `resident` pages. */
export interface BareTlb {
  vpn: Float64Array;
  asid: Int32Array;
  pa: Float64Array;
}

export function bareTlb(entries: number, resident: number): BareTlb {
  const tlb = {
    vpn: new Float64Array(entries).fill(-1),
    asid: new Int32Array(entries),
    pa: new Float64Array(entries),
  };
  for (let i = 0; i < resident; i++) {
    const vpn = SCATTERED_IOVA / 4096 + i;
    const slot = vpn & (entries - 1);
    tlb.vpn[slot] = vpn;
    tlb.asid[slot] = SCATTERED_ASID;
    tlb.pa[slot] = SCATTERED_PA + i * 4096;
  }
  return tlb;
}
