/** The host-side example of the package README, kept runnable. */
import { GuestMemory } from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import { encodeCd, encodeCommand, encodeSte, Smmuv3 } from '../index.js';

describe('README host example', () => {
  it('translates through guest tables, explains, and goes stale until a TLBI', () => {
    // --- README snippet ---
    const memory = new GuestMemory();
    memory.addBank({ gpa: 0x4000_0000, size: 16 * 2 ** 20 });

    // What a guest driver left in RAM: a linear stream table, one CD, four levels of 4K tables.
    const strtab = 0x4000_0000;
    const cd = 0x4000_1000;
    const [l0, l1, l2, l3] = [0x4000_2000, 0x4000_3000, 0x4000_4000, 0x4000_5000];
    memory.write(strtab + 64 * 5, encodeSte({ valid: true, config: 5, s1ContextPtr: cd, s1dss: 2 }));
    memory.write(
      cd,
      encodeCd({
        valid: true,
        aa64: true,
        r: true,
        a: true,
        aset: true,
        epd1: true,
        t0sz: 16, // 48-bit IOVAs, 4K granule: walks start at level 0
        ips: 5,
        asid: 1,
        ttb0: l0,
        mair: 0xf404ff44n,
      }),
    );
    memory.writeU64(l0 + 8 * 1, BigInt(l1) | 3n); // table descriptors
    memory.writeU64(l1 + 8 * 2, BigInt(l2) | 3n);
    memory.writeU64(l2 + 8 * 3, BigInt(l3) | 3n);
    memory.writeU64(l3 + 8 * 4, 0x4ecb_a000n | 0xf43n); // page: nG, AF, SH=IS, AP[1] (as Linux maps RW)

    const smmu = new Smmuv3({ memory, oas: 48, ssidBits: 20 });
    smmu.setStreamTable({ base: strtab, log2Size: 8, format: 'linear' });

    const ok = smmu.translate({ sid: 5, iova: 0x80_8060_4567, access: 'write' });
    // → { ok: true, pa: 0x4ecba567, perm: { read: true, write: true, exec: true }, level: 3, pageSize: 4096 }

    const fault = smmu.translate({ sid: 5, iova: 0x1000, access: 'read' });
    // → { ok: false, recorded: true, event: { name: 'F_TRANSLATION', type: 0x10, sid: 5, address: 0x1000, read: true, … } }

    const steps = smmu.explain({ sid: 5, iova: 0x80_8060_4567, access: 'read' });
    // → STE @0x40000140, CD @0x40001000, walk [L0 index 1, L1 index 2, L2 index 3, L3 index 4], result

    // The guest remaps the page: the IOTLB keeps the old translation until the guest's TLBI.
    memory.writeU64(l3 + 8 * 4, 0x4ecc_0000n | 0xf43n);
    const stale = smmu.translate({ sid: 5, iova: 0x80_8060_4567, access: 'read' }); // still 0x4ecba567
    smmu.command(encodeCommand({ op: 'TLBI_NH_ASID', vmid: 0, asid: 1 }));
    const fresh = smmu.translate({ sid: 5, iova: 0x80_8060_4567, access: 'read' }); // 0x4ecc0567
    // --- end of snippet ---

    expect(ok).toEqual({
      ok: true,
      pa: 0x4ecb_a567,
      perm: { read: true, write: true, exec: true },
      level: 3,
      pageSize: 4096,
    });
    expect(fault).toMatchObject({
      ok: false,
      recorded: true,
      event: { name: 'F_TRANSLATION', type: 0x10, sid: 5, address: 0x1000, read: true },
    });
    expect(steps.map((s) => s.label)).toEqual(['STE', 'CD', 'walk', 'result']);
    expect(steps[0]?.address).toBe(0x4000_0140);
    expect(steps[2]?.children?.map((c) => c.fields?.index)).toEqual([1, 2, 3, 4]);
    expect(stale).toMatchObject({ pa: 0x4ecb_a567 });
    expect(fresh).toMatchObject({ pa: 0x4ecc_0567 });
    expect(smmu.stats).toMatchObject({ walks: 3, iotlbHits: 1, cdCacheMisses: 1 });
  });
});
