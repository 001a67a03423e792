/**
 * Random mappings (pages and every block size the granule allows) written as raw descriptors,
 * then random probes: the model translates exactly the mapped addresses, to the mapped PA, with
 * the leaf's level and size, and faults with F_TRANSLATION everywhere else — for every granule
 * and input size, with and without the IOTLB, before and after an invalidation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCommand } from '../codec/command.js';
import { encodeSte } from '../codec/ste.js';
import { BumpAllocator, createRam, linuxCd, linuxSte, S1Tables, writeCd } from '../testing/host-tables.js';
import { Smmuv3 } from './smmuv3.js';

interface Mapping {
  iova: number;
  size: number;
  level: number;
  pa: number;
}

const GEOMETRIES = [
  { g: 12, ias: [32, 39, 40, 48], blockLevels: [1, 2] },
  { g: 14, ias: [36, 47, 48], blockLevels: [2] },
  { g: 16, ias: [32, 42, 48], blockLevels: [2] },
];

const arbCase = fc
  .record({
    geometry: fc.constantFrom(...GEOMETRIES),
    iasIndex: fc.nat(),
    picks: fc.array(fc.record({ slot: fc.nat(), kind: fc.nat(), target: fc.nat() }), {
      minLength: 1,
      maxLength: 24,
    }),
    probes: fc.array(fc.tuple(fc.nat(), fc.double({ min: 0, max: 1, noNaN: true })), {
      minLength: 1,
      maxLength: 32,
    }),
    iotlb: fc.boolean(),
  })
  .map(({ geometry, iasIndex, picks, probes, iotlb }) => ({
    g: geometry.g,
    ias: geometry.ias[iasIndex % geometry.ias.length]!,
    blockLevels: geometry.blockLevels,
    picks,
    probes,
    iotlb,
  }));

describe('walker property: translations equal the mappings written', () => {
  it('every probe translates as the mapping list says', () => {
    fc.assert(
      fc.property(arbCase, (c) => {
        const memory = createRam(24 * 1024 * 1024);
        const alloc = new BumpAllocator(memory, 0x4000_0000);
        const tables = new S1Tables(memory, alloc, c.g, c.ias);
        const levels = [3, ...c.blockLevels.filter((l) => l >= tables.startLevel)];
        // Non-overlapping mappings: each pick takes its own slot of the largest size used.
        const largest = 2 ** tables.shiftOf(Math.min(...levels));
        const slots = Math.min(2 ** c.ias / largest, 2 ** 20);
        const used = new Set<number>();
        const mappings: Mapping[] = [];
        for (const pick of c.picks) {
          const slot = pick.slot % slots;
          if (used.has(slot)) continue;
          used.add(slot);
          const level = levels[pick.kind % levels.length]!;
          const size = 2 ** tables.shiftOf(level);
          const iova = slot * largest + ((pick.kind * size) % largest);
          const pa = ((pick.target % 4096) + 1) * size;
          if (pa >= 2 ** 48) continue;
          tables.map(iova, pa, level);
          mappings.push({ iova, size, level, pa });
        }
        const cd = alloc.alloc(64, 64);
        writeCd(memory, cd, linuxCd(tables, 3));
        const smmu = new Smmuv3({ memory, features: { iotlbEntries: c.iotlb ? 256 : 0 } });
        smmu.setStreamConfig(0, encodeSte(linuxSte({ s1ContextPtr: cd })));
        const expected = (iova: number) => mappings.find((m) => iova >= m.iova && iova < m.iova + m.size);
        const check = () => {
          for (const [which, frac] of c.probes) {
            // Half the probes inside a mapping, half anywhere in the input range.
            const m = mappings[which % mappings.length];
            const iova =
              which % 2 === 0 && m !== undefined
                ? m.iova + Math.floor(frac * m.size)
                : Math.floor(frac * (2 ** c.ias - 1));
            const hit = expected(iova);
            const r = smmu.translate({ sid: 0, iova, access: 'read' });
            if (hit === undefined) {
              expect(r.ok ? 'ok' : r.event.name).toBe('F_TRANSLATION');
            } else {
              expect(r).toEqual({
                ok: true,
                pa: hit.pa + (iova - hit.iova),
                perm: { read: true, write: true, exec: true },
                level: hit.level,
                pageSize: hit.size,
              });
            }
          }
        };
        check();
        check(); // through the IOTLB when it is on
        smmu.command(encodeCommand({ op: 'TLBI_NH_ASID', vmid: 0, asid: 3 }));
        check();
      }),
      { numRuns: 60 },
    );
  });
});
