/**
 * Shared data of [iotlb-hit] and [walk-uncached]: a guest bank holding one 4-level, 4K-granule
 * Arm LPAE stage-1 table that maps 1 GiB of IOVA with 4K pages (L0, L1, L2 and 512 L3 tables
 * scattered over the bank), a CD pointing at it, an STE selecting that CD, and a bare walk
 * loop over the same tables with plain numbers (perf-limits.md §2, "number").
 */
import { GuestMemory } from '@vmmkit/core';
import { encodeCd, encodeSte } from '@vmmkit/smmuv3';
import { prng } from '../measure.js';

export const RAM = 0x4000_0000;
const RAM_SIZE = 16 * 1024 * 1024;
/** IOVA of the first mapped page; the 1 GiB mapping covers [MAPPED_BASE, MAPPED_BASE + 1 GiB). */
export const MAPPED_BASE = 0x4000_0000;
export const MAPPED_PAGES = (1 << 30) / 4096;
/** Output address of the first mapped page: 4 GiB, so PAs need more than 32 bits. */
export const PA_BASE = 2 ** 32;
export const ASID = 1;

export interface LpaeFixture {
  memory: GuestMemory;
  words: Uint32Array;
  l0: number;
  ste: Uint8Array;
  random: () => number;
}

export function buildLpaeFixture(): LpaeFixture {
  const random = prng(0x2545f491);
  const memory = new GuestMemory();
  const bank = memory.addBank({ gpa: RAM, size: RAM_SIZE });
  const words = new Uint32Array(bank.buffer!, bank.bufferOffset, RAM_SIZE / 4);
  // Table pages in a random order over the bank (page 0 holds the CD).
  const slots = Array.from({ length: RAM_SIZE / 4096 - 8 }, (_, i) => i + 8);
  for (let i = slots.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [slots[i], slots[j]] = [slots[j]!, slots[i]!];
  }
  const pageAt = (n: number) => RAM + slots[n]! * 4096;
  const put = (at: number, lo: number, hi: number) => {
    words[(at - RAM) / 4] = lo >>> 0;
    words[(at - RAM) / 4 + 1] = hi >>> 0;
  };
  const l0 = pageAt(0);
  const l1 = pageAt(1);
  const l2 = pageAt(2);
  put(l0 + 8 * ((MAPPED_BASE / 2 ** 39) & 511), l1 | 3, 0);
  put(l1 + 8 * ((MAPPED_BASE / 2 ** 30) & 511), l2 | 3, 0);
  for (let t = 0; t < 512; t++) {
    const l3 = pageAt(3 + t);
    put(l2 + 8 * t, l3 | 3, 0);
    for (let i = 0; i < 512; i++) {
      // AF | SH=inner shareable | AP[1] | nG | page: what Linux io-pgtable writes for a RW mapping.
      const page = t * 512 + i;
      put(l3 + 8 * i, ((page * 4096) | 0xf43) >>> 0, PA_BASE / 2 ** 32);
    }
  }
  memory.write(
    RAM,
    encodeCd({
      t0sz: 16,
      irgn0: 1,
      orgn0: 1,
      sh0: 3,
      epd1: true,
      valid: true,
      ips: 5,
      aa64: true,
      r: true,
      a: true,
      aset: true,
      asid: ASID,
      ttb0: l0,
      mair: 0xf404ff44n,
    }),
  );
  const ste = encodeSte({ valid: true, config: 5, s1ContextPtr: RAM, s1cir: 1, s1cor: 1, s1csh: 3 });
  return { memory, words, l0, ste, random };
}

/** `count` random IOVAs over the first `pages` mapped pages, 8-byte aligned offsets. */
export function randomIovas(random: () => number, count: number, pages: number): Float64Array {
  const iovas = new Float64Array(count);
  for (let i = 0; i < count; i++) iovas[i] = MAPPED_BASE + Math.floor(random() * pages) * 4096 + (i & 0xff8);
  return iovas;
}

const LEVEL_DIV = new Float64Array([2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12]);
const TWO32 = 4294967296;

/**
 * The bare walk loop: per level an index, one Uint32-pair read, the valid/type check; at the
 * leaf the AF and AP[2] checks and the PA. Returns -1 on any fault.
 */
export function bareWalk(words: Uint32Array, l0: number, iova: number, write: number): number {
  let table = l0;
  for (let level = 0; level < 4; level++) {
    const at = (table - RAM) / 4 + (Math.floor(iova / LEVEL_DIV[level]!) & 511) * 2;
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
