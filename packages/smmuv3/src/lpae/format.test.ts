import { IoPgtableRegistry, isVmmError } from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import { lpaeFixture } from '../testing/lpae-fixture.js';
import { armLpaeS1Format, encodeArmLpaeTcrEl1 } from './format.js';
import { SZ_1G, SZ_2M, SZ_4K, SZ_16K, SZ_32M, SZ_64K, SZ_512M } from './geometry.js';

describe('arm-lpae-s1 alloc', () => {
  it('fills cfg.vendor.arm like arm_64_lpae_alloc_pgtable_s1 (§2.6 Example A: 48-bit, 4K, coherent)', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G | SZ_64K, ias: 48, oas: 48 });
    const arm = f.cfg.vendor.arm!;
    expect(arm.tcr).toEqual({ tsz: 16, tg: 0, irgn: 1, orgn: 1, sh: 3, ips: 5 });
    expect(arm.mair).toBe(0xf404ff44n);
    expect(arm.granule).toBe(SZ_4K);
    expect(arm.startLevel).toBe(0);
    expect(arm.ttbr % SZ_4K).toBe(0);
    expect(f.cfg.pgsizeBitmap).toBe(SZ_4K + SZ_2M + SZ_1G);
    // The start table is a zeroed 4 KiB page taken from the allocator.
    expect(f.allocator.freeBytes).toBe(16 * 2 ** 20 - SZ_4K);
    expect(f.memory.read(arm.ttbr, SZ_4K).every((b) => b === 0)).toBe(true);
  });

  it('uses non-cacheable outer-shareable walks for a non-coherent walker', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_4K, coherentWalk: false, ias: 40, oas: 44 });
    expect(f.cfg.vendor.arm!.tcr).toEqual({ tsz: 24, tg: 0, irgn: 0, orgn: 0, sh: 2, ips: 4 });
  });

  it.each([
    [SZ_16K | SZ_32M, 2, SZ_16K + SZ_32M],
    [SZ_64K | SZ_512M, 1, SZ_64K + SZ_512M],
  ])('encodes TG0 of bitmap %i as %i', (bitmap, tg, restricted) => {
    const f = lpaeFixture({ pgsizeBitmap: bitmap });
    expect(f.cfg.vendor.arm!.tcr.tg).toBe(tg);
    expect(f.cfg.pgsizeBitmap).toBe(restricted);
  });

  it('clamps ias/oas to 48 bits and drops blocks above the start level', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, ias: 52, oas: 52 });
    expect([f.cfg.ias, f.cfg.oas]).toEqual([48, 48]);
    const small = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G, ias: 30 });
    // 30 bits with 4K pages start at level 2: a 1G entry does not exist there.
    expect(small.cfg.pgsizeBitmap).toBe(SZ_4K + SZ_2M);
  });

  it('refuses what the SMMU could not walk, leaving cfg untouched', () => {
    for (const [bitmap, ias, oas] of [
      [SZ_2M, 48, 48],
      [SZ_4K, 24, 48],
      [SZ_4K, 48, 39],
    ] as const) {
      let error: unknown;
      try {
        lpaeFixture({ pgsizeBitmap: bitmap, ias, oas });
      } catch (e) {
        error = e;
      }
      expect(isVmmError(error, 'EINVAL')).toBe(true);
    }
  });

  it('is found through the io-pgtable registry by name', () => {
    const registry = new IoPgtableRegistry([armLpaeS1Format]);
    expect(registry.names()).toEqual(['arm-lpae-s1']);
    expect(registry.get('arm-lpae-s1').vendor).toBe('arm');
  });
});

describe('ATTACH_TABLE format 1 payload (docs/PROTOCOL.md)', () => {
  it('lays out format, ASID, TCR_EL1, TTBR and MAIR at request offsets 16, 18, 24, 32, 40', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G });
    const { format, payload } = armLpaeS1Format.attachDescriptor!(f.cfg, 0x1e20);
    expect(format).toBe(1);
    expect(payload.length).toBe(68);
    const v = new DataView(payload.buffer);
    expect(v.getUint16(0, true)).toBe(1);
    expect(v.getUint16(2, true)).toBe(0x1e20);
    // TCR_EL1: T0SZ 16, IRGN0 1 [9:8], ORGN0 1 [11:10], SH0 3 [13:12], TG0 0, EPD1 [23], IPS 5 [34:32].
    expect(v.getBigUint64(8, true)).toBe(0x5_0080_3510n);
    expect(v.getBigUint64(16, true)).toBe(BigInt(f.cfg.vendor.arm!.ttbr));
    expect(v.getBigUint64(24, true)).toBe(0xf404ff44n);
    expect(payload.subarray(32).every((b) => b === 0)).toBe(true);
  });

  it('puts TG0 at [15:14] in TCR_EL1', () => {
    expect(encodeArmLpaeTcrEl1({ tsz: 25, tg: 2, irgn: 0, orgn: 0, sh: 2, ips: 2 })).toBe(0x2_0080_a019n);
  });

  it('refuses an ASID wider than 16 bits and a cfg that was never allocated', () => {
    const f = lpaeFixture({ pgsizeBitmap: SZ_4K });
    expect(() => armLpaeS1Format.attachDescriptor!(f.cfg, 0x10000)).toThrow(/ERANGE/);
    expect(() => armLpaeS1Format.attachDescriptor!({ ...f.cfg, vendor: {} }, 1)).toThrow(/alloc/);
  });
});
