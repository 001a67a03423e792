import {
  type IoPgtableCfg,
  isVmmError,
  type PasidTable,
  type PasidTableDevice,
  PasidTableLibrary,
} from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import { decodeCd } from '../codec/cd.js';
import { SZ_4K } from '../lpae/geometry.js';
import { dirtyAllocator, guestRam, lpaeFixture } from '../testing/lpae-fixture.js';
import { type ArmCdContext, armSmmuV3PasidVendor, writeArmCd } from './vendor.js';

const RAM = 8 * 2 ** 20;

interface SyncRecord {
  cookie: unknown;
  ssid: number;
  leaf: boolean;
  /** The 8 dwords of the CD being written, as memory held them when sync ran. */
  cd: bigint[];
  l1?: bigint;
}

function setup(features: Record<string, number | boolean>, cookie: unknown = 'dev0') {
  const { memory, allocator } = guestRam(RAM);
  const dev: PasidTableDevice = { name: 'smmu0', memory, allocator, features };
  const syncs: SyncRecord[] = [];
  let watch = 0;
  let watchL1 = 0;
  const library = new PasidTableLibrary([armSmmuV3PasidVendor]);
  const table: PasidTable<ArmCdContext> = library.registerPasidTable('arm-smmu-v3', dev, cookie, {
    sync: (c, ssid, leaf) => {
      const cd = watch === 0 ? [] : [0, 1, 2, 3, 4, 5, 6, 7].map((i) => memory.readU64(watch + 8 * i));
      syncs.push({ cookie: c, ssid, leaf, cd, l1: watchL1 ? memory.readU64(watchL1) : undefined });
    },
  });
  table.alloc();
  return {
    memory,
    allocator,
    table,
    syncs,
    watch: (gpa: number, l1 = 0) => {
      watch = gpa;
      watchL1 = l1;
    },
  };
}

/** An io-pgtable configuration as arm-lpae-s1 would leave it (§2.6 Example A). */
function exampleA(): IoPgtableCfg {
  return {
    vendor: {
      arm: {
        ttbr: 0x8000_0000,
        tcr: { tsz: 16, tg: 0, irgn: 1, orgn: 1, sh: 3, ips: 5 },
        mair: 0xf404ff44n,
        granule: SZ_4K,
        startLevel: 0,
        levels: 4,
      },
    },
  } as IoPgtableCfg;
}

describe('arm-smmu-v3 PASID table: allocation (smmuv3-lpae.md §2.4)', () => {
  it('is registered under its format and its vendor name', () => {
    const library = new PasidTableLibrary([armSmmuV3PasidVendor]);
    expect(library.vendorFor('arm')).toBe(armSmmuV3PasidVendor);
    expect(library.formats()).toEqual(['arm-smmu-v3']);
  });

  it.each([
    [{ ssidBits: 0 }, 0, 0, 0x1000],
    [{ ssidBits: 4 }, 0, 4, 0x1000],
    [{ ssidBits: 10, cd2l: true }, 0, 10, 0x1_0000],
    [{ ssidBits: 16 }, 0, 10, 0x1_0000],
    [{ ssidBits: 16, cd2l: true }, 2, 16, 0x1000],
    [{ ssidBits: 20, cd2l: true }, 2, 20, 0x2000],
  ])('features %o: s1fmt %i, s1cdmax %i, %i bytes naturally aligned', (features, s1fmt, s1cdmax, bytes) => {
    const { table, allocator } = setup(features);
    const layout = table.cfg.vendor.arm!.layout!;
    expect([layout.s1fmt, layout.s1cdmax]).toEqual([s1fmt, s1cdmax]);
    expect(RAM - allocator.freeBytes).toBe(bytes);
    expect(table.cfg.base % bytes).toBe(0);
    expect(layout.leaves.length).toBe(s1fmt === 2 ? 2 ** (s1cdmax - 10) : 0);
  });

  it('refuses a second alloc, bad ssidBits and a reserved s1dss', () => {
    const { table } = setup({ ssidBits: 3 });
    expect(
      isVmmError(
        thrown(() => table.alloc()),
        'EBUSY',
      ),
    ).toBe(true);
    expect(() => setup({ ssidBits: 21 })).toThrow(/ssidBits/);
    const { memory, allocator } = guestRam(RAM);
    const t = new PasidTableLibrary([armSmmuV3PasidVendor]).registerPasidTable(
      'arm',
      { name: 'x', memory, allocator },
      0,
    );
    t.cfg.vendor.arm = { s1dss: 3 };
    expect(() => t.alloc()).toThrow(/s1dss/);
    expect(allocator.freeBytes).toBe(RAM);
  });
});

describe('prepare (Linux arm_smmu_make_s1_cd, §2.5)', () => {
  it('builds §2.6 Example A bit for bit', () => {
    const { table, memory, syncs } = setup({ ssidBits: 2 });
    table.write(0, table.prepare(exampleA(), 1));
    expect(syncs.length).toBe(2);
    const cd = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => memory.readU64(table.cfg.base + 8 * i));
    expect(cd).toEqual([0x0001e205c0003510n, 0x80000000n, 0n, 0xf404ff44n, 0n, 0n, 0n, 0n]);
  });

  it('matches the Linux KUnit dword 0 for ASIDs 778 and 1997 (§2.6 Example B)', () => {
    const cfg = exampleA();
    cfg.vendor.arm!.tcr = { tsz: 4, tg: 2, irgn: 2, orgn: 1, sh: 3, ips: 1 };
    const { table, memory } = setup({ ssidBits: 2 });
    table.write(1, table.prepare(cfg, 778));
    expect(memory.readU64(table.cfg.base + 64)).toBe(0x030ae201c0003684n);
    table.write(1, table.prepare(cfg, 1997));
    expect(memory.readU64(table.cfg.base + 64)).toBe(0x07cde201c0003684n);
  });

  it('takes TTB0 and the walk attributes from a real arm-lpae-s1 table', () => {
    const lpae = lpaeFixture({ pgsizeBitmap: SZ_4K, ias: 40, oas: 44, coherentWalk: false });
    const { table } = setup({ ssidBits: 2 });
    const ctx = table.prepare(lpae.cfg, 7);
    expect(ctx).toMatchObject({
      t0sz: 24,
      tg0: 0,
      irgn0: 0,
      orgn0: 0,
      sh0: 2,
      ips: 4,
      ttb0: lpae.cfg.vendor.arm!.ttbr,
    });
  });

  it('refuses an ASID the SMMU cannot hold and a table that is not arm-lpae-s1', () => {
    const { table } = setup({ ssidBits: 2, asidBits: 8 });
    expect(
      isVmmError(
        thrown(() => table.prepare(exampleA(), 256)),
        'ERANGE',
      ),
    ).toBe(true);
    expect(() => table.prepare({ vendor: {} } as IoPgtableCfg, 1)).toThrow(/arm-lpae-s1/);
  });
});

describe('write ordering (§3.3, §9.2)', () => {
  it('install: other dwords first, sync, then V in dword 0, sync', () => {
    const { table, syncs, watch } = setup({ ssidBits: 4 }, { endpoint: 3 });
    const at = table.cfg.base + 5 * 64;
    watch(at);
    table.write(5, table.prepare(exampleA(), 1));
    expect(syncs.map((s) => [s.ssid, s.leaf, s.cookie])).toEqual([
      [5, true, { endpoint: 3 }],
      [5, true, { endpoint: 3 }],
    ]);
    const [first, second] = syncs;
    expect(first!.cd.slice(1)).toEqual([0x80000000n, 0n, 0xf404ff44n, 0n, 0n, 0n, 0n]);
    expect(first!.cd[0]! & 0x8000_0000n).toBe(0n);
    expect(second!.cd[0]).toBe(0x0001e205c0003510n);
  });

  it('an ASID change on a live CD is one store to dword 0 and one sync, never invalid', () => {
    const { table, syncs, watch } = setup({ ssidBits: 4 });
    watch(table.cfg.base + 64 * 2);
    table.write(2, table.prepare(exampleA(), 1));
    syncs.length = 0;
    expect(writeArmCd(table.cfg, 2, table.prepare(exampleA(), 0x1e20))).toBe('hitless');
    expect(syncs.length).toBe(1);
    expect(syncs[0]!.cd[0]).toBe(0x1e20e205c0003510n);
  });

  it('a new page table on a live CD breaks it: V=0, sync, rewrite, sync, V=1, sync', () => {
    const { table, syncs, watch } = setup({ ssidBits: 4 });
    watch(table.cfg.base + 64 * 3);
    table.write(3, table.prepare(exampleA(), 1));
    syncs.length = 0;
    const other = exampleA();
    other.vendor.arm!.ttbr = 0x9000_0000;
    other.vendor.arm!.tcr = { tsz: 24, tg: 0, irgn: 1, orgn: 1, sh: 3, ips: 5 };
    table.write(3, table.prepare(other, 1));
    expect(syncs.length).toBe(3);
    expect(syncs[0]!.cd[0]! & 0x8000_0000n).toBe(0n);
    expect(syncs[1]!.cd[0]! & 0x8000_0000n).toBe(0n);
    expect(syncs[1]!.cd[1]).toBe(0x9000_0000n);
    expect(syncs[2]!.cd[0]).toBe(0x0001e205c0003518n);
    expect(writeArmCd(table.cfg, 3, table.prepare(other, 1))).toBe('unchanged');
  });

  it('clear: V=0 and sync first, then the rest', () => {
    const { table, syncs, watch } = setup({ ssidBits: 4 });
    watch(table.cfg.base);
    table.write(0, table.prepare(exampleA(), 1));
    syncs.length = 0;
    table.write(0, null);
    expect(syncs.length).toBe(2);
    expect(syncs[0]!.cd[0]).toBe(0n);
    expect(syncs[0]!.cd[1]).toBe(0x8000_0000n);
    expect(syncs[1]!.cd).toEqual(new Array(8).fill(0n));
    syncs.length = 0;
    table.write(0, null);
    expect(syncs.length).toBe(0);
  });

  it('refuses an SSID beyond S1CDMax, a missing sync callback, and a bad field, writing nothing', () => {
    const { table, memory, syncs } = setup({ ssidBits: 4 });
    expect(
      isVmmError(
        thrown(() => table.write(16, table.prepare(exampleA(), 1))),
        'ERANGE',
      ),
    ).toBe(true);
    expect(() => table.write(1, { ...table.prepare(exampleA(), 1), t0sz: 64 })).toThrow(/t0sz/);
    expect(memory.read(table.cfg.base, 1024).every((b) => b === 0)).toBe(true);
    const bare = new PasidTableLibrary([armSmmuV3PasidVendor]).registerPasidTable(
      'arm-smmu-v3',
      table.cfg.iommuDev,
      null,
    );
    bare.alloc();
    expect(() => bare.write(0, bare.prepare(exampleA(), 1))).toThrow(/sync/);
    expect(syncs.length).toBe(0);
  });
});

describe('two-level tables (S1Fmt=2)', () => {
  it('publishes a leaf in L1 before any CD in it, with a non-leaf sync', () => {
    const { table, syncs, watch, memory } = setup({ ssidBits: 16, cd2l: true });
    const ssid = 5 * 1024 + 77;
    watch(0, table.cfg.base + 5 * 8);
    table.write(ssid, table.prepare(exampleA(), 9));
    expect(syncs.map((s) => [s.ssid, s.leaf])).toEqual([
      [ssid, false],
      [ssid, true],
      [ssid, true],
    ]);
    const leaf = table.cfg.vendor.arm!.layout!.leaves[5]!;
    expect(leaf % 0x1_0000).toBe(0);
    expect(syncs[0]!.l1).toBe(BigInt(leaf) | 1n);
    expect(memory.read(leaf, 0x1_0000).filter((b) => b !== 0).length).toBeGreaterThan(0);
    expect(decodeCd(memory.read(leaf + 77 * 64, 64))).toMatchObject({
      valid: true,
      asid: 9,
      ttb0: 0x8000_0000,
    });
  });

  it('writes the table and each leaf (all CDs invalid) before the SMMU can reach them, whatever the allocator left', () => {
    const { memory, allocator } = guestRam(RAM);
    // An allocator that hands out pages full of 0xff: every stale CD would look valid.
    const dirty = dirtyAllocator(memory, allocator);
    const leafAtPublish: Uint8Array[] = [];
    const library = new PasidTableLibrary([armSmmuV3PasidVendor]);
    const table: PasidTable<ArmCdContext> = library.registerPasidTable(
      'arm-smmu-v3',
      { name: 'smmu0', memory, allocator: dirty, features: { ssidBits: 16, cd2l: true } },
      null,
      {
        sync: (_c, _ssid, leaf) => {
          if (leaf) return;
          const at = table.cfg.vendor.arm!.layout!.leaves[5]!;
          leafAtPublish.push(memory.read(at, 0x1_0000));
        },
      },
    );
    table.alloc();
    // 64 L1 descriptors, all invalid.
    expect(memory.read(table.cfg.base, 64 * 8).every((b) => b === 0)).toBe(true);
    table.write(5 * 1024 + 3, table.prepare(exampleA(), 9));
    expect(leafAtPublish).toHaveLength(1);
    expect(leafAtPublish[0]!.every((b) => b === 0)).toBe(true);

    const linear = library.registerPasidTable(
      'arm-smmu-v3',
      { name: 'smmu1', memory, allocator: dirty, features: { ssidBits: 4 } },
      null,
      { sync: () => {} },
    );
    linear.alloc();
    expect(memory.read(linear.cfg.base, 16 * 64).every((b) => b === 0)).toBe(true);
  });

  it('holds thousands of substreams and frees every page', () => {
    const { table, allocator, memory, syncs } = setup({ ssidBits: 14, cd2l: true });
    const start = allocator.freeBytes;
    const ssids: number[] = [];
    for (let i = 0; i < 3000; i++) ssids.push((i * 7919) % 2 ** 14);
    for (const ssid of ssids) table.write(ssid, table.prepare(exampleA(), ssid & 0xffff));
    const leaves = table.cfg.vendor.arm!.layout!.leaves.filter((l) => l !== 0);
    expect(leaves.length).toBe(16);
    expect(start - allocator.freeBytes).toBe(16 * 0x1_0000);
    for (const ssid of ssids) {
      const l1 = memory.readU64(table.cfg.base + 8 * (ssid >> 10));
      const cd = decodeCd(memory.read(Number(l1 & 0x000f_ffff_ffff_f000n) + (ssid % 1024) * 64, 64));
      expect(cd.asid).toBe(ssid);
    }
    expect(syncs.filter((s) => !s.leaf).length).toBe(16);
    table.write(ssids[0]!, null);
    expect(decodeCd(memory.read(table.cfg.vendor.arm!.layout!.leaves[0]!, 64)).valid).toBe(false);
    table.free();
    expect(allocator.freeBytes).toBe(RAM);
    expect(table.cfg.base).toBe(0);
    expect(() => table.write(1, null)).toThrow(/alloc/);
  });

  it('clearing an SSID of a leaf never allocated allocates nothing', () => {
    const { table, allocator, syncs } = setup({ ssidBits: 12, cd2l: true });
    const before = allocator.freeBytes;
    expect(writeArmCd(table.cfg, 3000, null)).toBe('unchanged');
    expect(allocator.freeBytes).toBe(before);
    expect(syncs.length).toBe(0);
  });

  it('leaves the L1 entry invalid when the leaf cannot be allocated', () => {
    const { memory, allocator } = guestRam(0x1_0000 + 0x1000);
    const t = new PasidTableLibrary([armSmmuV3PasidVendor]).registerPasidTable(
      'arm',
      { name: 'tiny', memory, allocator, features: { ssidBits: 12, cd2l: true } },
      null,
      { sync: () => {} },
    );
    t.alloc();
    allocator.alloc(0x1000);
    expect(
      isVmmError(
        thrown(() => t.write(2048, t.prepare(exampleA(), 1))),
        'ENOMEM',
      ),
    ).toBe(true);
    expect(memory.readU64(t.cfg.base + 16)).toBe(0n);
    expect(t.cfg.vendor.arm!.layout!.leaves[2]).toBe(0);
  });
});

describe('ATTACH_TABLE format 2 payload (docs/PROTOCOL.md)', () => {
  it('lays out format, s1fmt, s1dss, s1cdmax and the table pointer at request offsets 16, 18, 19, 20, 24', () => {
    const { table } = setup({ ssidBits: 16, cd2l: true });
    table.cfg.vendor.arm!.s1dss = 2;
    const { format, payload } = table.attachDescriptor();
    expect(format).toBe(2);
    expect(payload.length).toBe(68);
    const v = new DataView(payload.buffer);
    expect([v.getUint16(0, true), v.getUint8(2), v.getUint8(3), v.getUint32(4, true)]).toEqual([2, 2, 2, 16]);
    expect(v.getBigUint64(8, true)).toBe(BigInt(table.cfg.base));
    expect(payload.subarray(16).every((b) => b === 0)).toBe(true);
  });

  it('defaults s1dss to terminate and refuses a reserved one', () => {
    const { table } = setup({ ssidBits: 3 });
    expect(table.attachDescriptor().payload[3]).toBe(0);
    table.cfg.vendor.arm!.s1dss = 3;
    expect(() => table.attachDescriptor()).toThrow(/s1dss/);
  });
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}
