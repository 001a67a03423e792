import type { GuestMemory } from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import type { CdFields } from '../codec/cd.js';
import { encodeCommand } from '../codec/command.js';
import { encodeSte } from '../codec/ste.js';
import {
  BumpAllocator,
  createRam,
  Leaf,
  linuxCd,
  linuxSte,
  S1Tables,
  writeCd,
} from '../testing/host-tables.js';
import { Smmuv3 } from './smmuv3.js';
import type { TranslateRequest } from './types.js';

const SID = 3;

function setup(granuleShift: number, inputBits: number, cd: Partial<CdFields> = {}, oas = 48) {
  const memory: GuestMemory = createRam(16 * 1024 * 1024);
  const alloc = new BumpAllocator(memory, 0x4000_0000);
  const tables = new S1Tables(memory, alloc, granuleShift, inputBits);
  const cdAddress = alloc.alloc(64, 64);
  const smmu = new Smmuv3({ memory, oas });
  const install = (overrides: Partial<CdFields> = {}) => {
    writeCd(memory, cdAddress, linuxCd(tables, 5, { ...cd, ...overrides }));
    smmu.setStreamConfig(SID, encodeSte(linuxSte({ s1ContextPtr: cdAddress })));
    // New tables or attributes under the same ASID need a TLBI, as on hardware.
    smmu.command(encodeCommand({ op: 'TLBI_NH_ALL', vmid: 0 }));
  };
  install();
  const run = (request: Partial<TranslateRequest> & { iova: number }) => {
    const r = smmu.translate({ sid: SID, access: 'read', ...request });
    return r.ok ? r : r.event.name;
  };
  return { memory, tables, smmu, run, install };
}

describe('stage-1 walk: granules, start levels and blocks', () => {
  const configs: [number, number[]][] = [
    [12, [32, 36, 39, 40, 42, 48]],
    [14, [32, 36, 40, 47, 48]],
    [16, [32, 40, 42, 44, 48]],
  ];
  for (const [g, sizes] of configs) {
    for (const ias of sizes) {
      it(`${2 ** (g - 10)}K granule, ${ias}-bit input: pages and the blocks the architecture allows`, () => {
        const { tables, run } = setup(g, ias);
        const stride = g - 3;
        const expectedStart = 4 - Math.ceil((ias - g) / stride);
        expect(tables.startLevel).toBe(expectedStart);
        const top = 2 ** ias;
        // A page at the very top of the input range and one near the bottom.
        const pageSize = 2 ** g;
        const highIova = top - pageSize;
        tables.map(highIova, 0x4080_0000);
        tables.map(pageSize, 0x4090_0000);
        expect(run({ iova: highIova + 0x18 })).toMatchObject({ pa: 0x4080_0018, level: 3, pageSize });
        expect(run({ iova: pageSize + 7 })).toMatchObject({ pa: 0x4090_0007, level: 3 });
        expect(run({ iova: 2 * pageSize })).toBe('F_TRANSLATION');
        expect(run({ iova: top })).toBe('F_TRANSLATION');
        // Blocks: 4K at L1 and L2, 16K and 64K at L2 (48-bit OAS).
        const blockLevels = g === 12 ? [1, 2] : [2];
        for (const level of blockLevels) {
          const size = 2 ** tables.shiftOf(level);
          if (level < tables.startLevel || size * 2 > top) continue;
          const iova = top / 2;
          const pa = size * 3;
          tables.map(iova, pa, level);
          expect(run({ iova: iova + size - 8 })).toMatchObject({ pa: pa + size - 8, level, pageSize: size });
        }
      });
    }
  }

  it('a block where the architecture forbids one is a translation fault', () => {
    // 4K level 0, 16K level 1, 64K level 1 without 52-bit output.
    for (const [g, level] of [
      [12, 0],
      [14, 1],
      [16, 1],
    ] as const) {
      const { tables, run } = setup(g, 48);
      tables.map(0, 0, level);
      expect(run({ iova: 0x10 })).toBe('F_TRANSLATION');
    }
  });

  it('64K granule with a 52-bit output: L1 4 TiB blocks and PA[51:48] in descriptor bits [15:12]', () => {
    const { tables, run } = setup(16, 48, { ips: 6 }, 52);
    const pa = 0x000f_1234_5670_0000;
    const packed = (BigInt(pa) & 0x0000_ffff_ffff_0000n) | ((BigInt(pa) >> 48n) << 12n);
    tables.writeRaw(0x10000, 3, packed | Leaf.AF | Leaf.AP_UNPRIV | 3n);
    expect(run({ iova: 0x10008 })).toMatchObject({ pa: pa + 8, level: 3 });
    tables.map(2 ** 43, 2 ** 42, 1);
    expect(run({ iova: 2 ** 43 + 0x123 })).toMatchObject({
      pa: 2 ** 42 + 0x123,
      level: 1,
      pageSize: 2 ** 42,
    });
  });

  it('64K granule on a 52-bit SMMU with a 48-bit IPS: PA[51:48] in bits [15:12] is an address size fault', () => {
    const { tables, run } = setup(16, 48, { ips: 5 }, 52);
    const pa = 0x0001_0000_4000_0000; // 2^48 + 1 GiB: representable, beyond the IPS
    const packed = (BigInt(pa) & 0x0000_ffff_ffff_0000n) | ((BigInt(pa) >> 48n) << 12n);
    tables.writeRaw(0x10000, 3, packed | Leaf.AF | Leaf.AP_UNPRIV | 3n);
    expect(run({ iova: 0x10008 })).toBe('F_ADDR_SIZE');
    // The same bits in a table descriptor put the next table beyond the IPS.
    tables.writeRaw(0x2000_0000, 2, packed | 3n);
    expect(run({ iova: 0x2000_0000 })).toBe('F_ADDR_SIZE');
    // Below 2^48 the packed form is the plain address.
    tables.writeRaw(0x30000, 3, BigInt(0x4050_0000) | Leaf.AF | Leaf.AP_UNPRIV | 3n);
    expect(run({ iova: 0x30010 })).toMatchObject({ pa: 0x4050_0010, level: 3 });
  });

  it('address size faults: output and next-table addresses beyond IPS', () => {
    const { tables, run } = setup(12, 48, { ips: 2 }); // 40-bit output
    tables.map(0x1000, 2 ** 40);
    expect(run({ iova: 0x1000 })).toBe('F_ADDR_SIZE');
    tables.map(0x2000, 2 ** 40 - 4096);
    expect(run({ iova: 0x2000 })).toMatchObject({ pa: 2 ** 40 - 4096 });
    tables.writeRaw(2 ** 40, 1, BigInt(2 ** 41) | 3n);
    expect(run({ iova: 2 ** 40 })).toBe('F_ADDR_SIZE');
  });

  it('EPD0 makes every TT0 address fault', () => {
    const { tables, run, install } = setup(12, 48);
    tables.map(0x1000, 0x4100_0000);
    install({ epd0: true });
    expect(run({ iova: 0x1000 })).toBe('F_TRANSLATION');
  });

  it('an unreadable descriptor is F_WALK_EABT carrying the descriptor address', () => {
    const { tables, smmu } = setup(12, 48);
    const at = tables.writeRaw(0x5000, 2, 0x7000_0003n);
    const r = smmu.translate({ sid: SID, iova: 0x5000, access: 'write' });
    expect(r).toMatchObject({ ok: false, event: { name: 'F_WALK_EABT', fetchAddress: 0x7000_0000 + 5 * 8 } });
    expect(at).toBeGreaterThan(0);
  });
});

describe('stage-1 permissions and access flag', () => {
  const base = Leaf.SH_IS | Leaf.AF | Leaf.NG;
  const cases: [string, bigint, { u: string; p: string }][] = [
    // [AP and XN bits, unprivileged r/w/x, privileged r/w/x]
    ['AP=00 (EL1 RW)', 0n, { u: '--x', p: 'rwx' }],
    ['AP=01 (RW both)', Leaf.AP_UNPRIV, { u: 'rwx', p: 'rw-' }],
    ['AP=10 (EL1 RO)', Leaf.AP_RDONLY, { u: '--x', p: 'r-x' }],
    ['AP=11 (RO both)', Leaf.AP_UNPRIV | Leaf.AP_RDONLY, { u: 'r-x', p: 'r-x' }],
    ['AP=01, UXN|PXN (Linux NOEXEC)', Leaf.AP_UNPRIV | Leaf.UXN | Leaf.PXN, { u: 'rw-', p: 'rw-' }],
    ['AP=11, PXN only', Leaf.AP_UNPRIV | Leaf.AP_RDONLY | Leaf.PXN, { u: 'r-x', p: 'r--' }],
  ];
  const perm = (run: ReturnType<typeof setup>['run'], privileged: boolean) =>
    (['read', 'write', 'exec'] as const)
      .map((access, i) => (typeof run({ iova: 0x1000, access, privileged }) === 'string' ? '-' : 'rwx'[i]))
      .join('');

  it.each(cases)('%s', (_name, attrs, expected) => {
    const { tables, run } = setup(12, 48);
    tables.map(0x1000, 0x4100_0000, 3, base | attrs);
    expect(perm(run, false)).toBe(expected.u);
    expect(perm(run, true)).toBe(expected.p);
    const denied = expected.u.indexOf('-');
    if (denied >= 0) {
      expect(run({ iova: 0x1000, access: (['read', 'write', 'exec'] as const)[denied] })).toBe(
        'F_PERMISSION',
      );
    }
  });

  it('the reported perm matches the access check', () => {
    const { tables, run } = setup(12, 48);
    tables.map(0x1000, 0x4100_0000, 3, base | Leaf.AP_UNPRIV | Leaf.AP_RDONLY | Leaf.UXN | Leaf.PXN);
    expect(run({ iova: 0x1000 })).toMatchObject({ perm: { read: true, write: false, exec: false } });
  });

  it('APTable, XNTable and PXNTable restrict the levels below; HAD0 ignores them', () => {
    const { tables, run, install } = setup(12, 48);
    tables.map(0x1000, 0x4100_0000);
    // Set APTable[1] (no write) and XNTable on the L2 table descriptor that leads to the page.
    const l2 = tables.slot(0x1000, 2);
    const { memory } = tables as unknown as { memory: GuestMemory };
    memory.writeU64(l2, memory.readU64(l2) | (1n << 62n) | (1n << 60n));
    install();
    expect(run({ iova: 0x1000, access: 'write' })).toBe('F_PERMISSION');
    expect(run({ iova: 0x1000, access: 'exec' })).toBe('F_PERMISSION');
    expect(run({ iova: 0x1000 })).toMatchObject({ pa: 0x4100_0000 });
    // APTable[0] removes unprivileged access altogether.
    memory.writeU64(l2, memory.readU64(l2) | (1n << 61n));
    install();
    expect(run({ iova: 0x1000 })).toBe('F_PERMISSION');
    expect(run({ iova: 0x1000, privileged: true })).toMatchObject({ pa: 0x4100_0000 });
    install({ had0: true });
    expect(run({ iova: 0x1000, access: 'write' })).toMatchObject({ pa: 0x4100_0000 });
  });

  it('WXN makes writable pages execute-never; PAN stops privileged data access to EL0 pages', () => {
    const { tables, run, install } = setup(12, 48);
    tables.map(0x1000, 0x4100_0000);
    expect(run({ iova: 0x1000, access: 'exec' })).toMatchObject({ pa: 0x4100_0000 });
    install({ wxn: true });
    expect(run({ iova: 0x1000, access: 'exec' })).toBe('F_PERMISSION');
    install({ pan: true });
    expect(run({ iova: 0x1000, privileged: true })).toBe('F_PERMISSION');
    expect(run({ iova: 0x1000 })).toMatchObject({ pa: 0x4100_0000 });
  });

  it('access flag: AF=0 faults unless AFFD; the access fault outranks the permission fault', () => {
    const { tables, run, install } = setup(12, 48);
    tables.map(0x1000, 0x4100_0000, 3, Leaf.AP_UNPRIV | Leaf.AP_RDONLY | Leaf.NG);
    expect(run({ iova: 0x1000, access: 'write' })).toBe('F_ACCESS');
    install({ affd: true });
    expect(run({ iova: 0x1000 })).toMatchObject({ pa: 0x4100_0000 });
    expect(run({ iova: 0x1000, access: 'write' })).toBe('F_PERMISSION');
  });
});
