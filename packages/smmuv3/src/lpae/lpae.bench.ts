import { IommuProt } from '@vmmkit/core';
import { bench, describe } from 'vitest';
import { lpaeFixture, TABLE_REGION_BASE } from '../testing/lpae-fixture.js';
import { SZ_1G, SZ_2M, SZ_4K } from './geometry.js';

/**
 * Mapping and unmapping 4K pages through arm-lpae-s1 (4-level walk per page, checked guest
 * memory, descriptor encode, TLB callback) against the bare cost of storing and clearing the same
 * 64-bit descriptors straight into the buffer that holds the leaf table. The ratio vitest prints
 * is the price of the page-table code over raw descriptor stores.
 */
const PAGES = 512;
const PROT = IommuProt.READ | IommuProt.WRITE | IommuProt.CACHE | IommuProt.NOEXEC;

// A TLB that only counts, so the benchmark measures the table code rather than a recorder.
let flushes = 0;
const fixture = lpaeFixture({
  pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G,
  tlb: {
    flushAll: () => flushes++,
    flushWalk: () => flushes++,
    addPage: () => flushes++,
  },
});
const { ops } = fixture;
const IOVA = 0x12_3440_0000;
// Build the L1–L3 tables once, so both sides write into an existing leaf table.
ops.map(IOVA, 0, SZ_4K, PROT);
ops.unmap(IOVA, SZ_4K);
const bank = fixture.memory.ramBank(TABLE_REGION_BASE, 8)!;
const words = new Uint32Array(bank.buffer!, bank.bufferOffset, bank.size / 4);
let leafTable = 0;
{
  const arm = fixture.cfg.vendor.arm!;
  let table = arm.ttbr;
  for (const shift of [39, 30, 21]) {
    const slot = table + (Math.floor(IOVA / 2 ** shift) % 512) * 8;
    const lo = fixture.memory.readU32(slot);
    table = fixture.memory.readU32(slot + 4) * 2 ** 32 + (lo & 0xffff_f000);
  }
  leafTable = (table - TABLE_REGION_BASE) / 4;
}
let sink = 0;

describe(`map + unmap of ${PAGES} 4K pages, one call per page`, () => {
  bench('baseline: raw 64-bit descriptor stores and clears in the same leaf table', () => {
    for (let i = 0; i < PAGES; i++) {
      const w = leafTable + 2 * i;
      const pa = 0x8000_0000 + i * SZ_4K;
      words[w + 1] = 0x0060_0000 | Math.floor(pa / 2 ** 32);
      words[w] = ((pa >>> 0) | 0xf47) >>> 0;
    }
    for (let i = 0; i < PAGES; i++) {
      const w = leafTable + 2 * i;
      sink ^= words[w]!;
      words[w] = 0;
      words[w + 1] = 0;
    }
  });

  bench('arm-lpae-s1 map then unmap', () => {
    for (let i = 0; i < PAGES; i++) ops.map(IOVA + i * SZ_4K, 0x8000_0000 + i * SZ_4K, SZ_4K, PROT);
    for (let i = 0; i < PAGES; i++) sink ^= ops.unmap(IOVA + i * SZ_4K, SZ_4K);
  });

  bench('arm-lpae-s1 map then unmap, one call for the whole 2 MiB run', () => {
    ops.map(IOVA, 0x8000_0000 + SZ_4K, PAGES * SZ_4K, PROT);
    sink ^= ops.unmap(IOVA, PAGES * SZ_4K);
  });
});

export { flushes, sink };
