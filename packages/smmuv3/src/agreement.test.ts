/**
 * The guest half and the host half read the same bytes the same way: tables built by the
 * arm-lpae-s1 io-pgtable and CDs written by the arm PASID-table vendor, walked by the Smmuv3
 * model through an STE from `encodeSte`, translate every address exactly as `iovaToPhys` says.
 * TLB and CD maintenance go through CMDQ commands, as the Linux SMMUv3 driver issues them, so a
 * missing invalidation shows up as a stale IOTLB hit.
 */
import {
  BitmapPageAllocator,
  GuestMemory,
  IommuProt,
  type IoPgtableCfg,
  type IoPgtableOps,
  PasidTableLibrary,
} from '@vmmkit/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ArmCdContext, armSmmuV3PasidVendor } from './cdlib/vendor.js';
import { type CmdqCommand, encodeCommand } from './codec/command.js';
import { EventType } from './codec/event.js';
import { encodeSte, SteConfig, SteS1Dss } from './codec/ste.js';
import { armLpaeS1Format } from './lpae/format.js';
import { SZ_1G, SZ_2M, SZ_4K, SZ_16K, SZ_32M, SZ_64K, SZ_512M } from './lpae/geometry.js';
import { Smmuv3 } from './model/smmuv3.js';
import { referenceWalk } from './testing/lpae-fixture.js';

const RAM_BASE = 0x4000_0000;
const RAM = 48 * 2 ** 20;
const SID = 7;
const SSIDS = [1, 1500] as const;
const ASIDS = [11, 12] as const;

const granules = [
  { name: '4K', bitmap: SZ_4K | SZ_2M | SZ_1G, sizes: [SZ_4K, SZ_2M, SZ_1G] },
  { name: '16K', bitmap: SZ_16K | SZ_32M, sizes: [SZ_16K, SZ_32M] },
  { name: '64K', bitmap: SZ_64K | SZ_512M, sizes: [SZ_64K, SZ_512M] },
];

interface Op {
  pasid: number;
  unmap: boolean;
  unit: number;
  slot: number;
  count: number;
  paSlot: number;
  readOnly: boolean;
}

function opArb(sizes: number[]): fc.Arbitrary<Op> {
  return fc.record({
    pasid: fc.integer({ min: 0, max: 1 }),
    unmap: fc.boolean(),
    unit: fc.constantFrom(...sizes),
    slot: fc.nat(),
    count: fc.integer({ min: 1, max: 3 }),
    paSlot: fc.integer({ min: 0, max: 4096 }),
    readOnly: fc.boolean(),
  });
}

function build(bitmap: number, ias: number) {
  const memory = new GuestMemory();
  memory.addBank({ gpa: RAM_BASE, size: RAM });
  const allocator = new BitmapPageAllocator(memory, { base: RAM_BASE, size: RAM });
  const smmu = new Smmuv3({ memory, oas: 48, ssidBits: 12, features: { twoLevelCdTables: true } });
  const issue = (cmd: CmdqCommand) => {
    expect(smmu.command(encodeCommand(cmd))).toEqual({ ok: true });
  };
  const sync = () => issue({ op: 'CMD_SYNC', cs: 0, msh: 0, msiAttr: 0, msiData: 0, msiAddress: 0 });
  const cdTable = new PasidTableLibrary([armSmmuV3PasidVendor]).registerPasidTable<ArmCdContext>(
    'arm-smmu-v3',
    { name: 'smmu0', memory, allocator, features: { ssidBits: 12, cd2l: true } },
    SID,
    {
      sync: (cookie, ssid, leaf) => {
        issue({ op: 'CFGI_CD', sid: cookie as number, ssid, leaf });
        sync();
      },
    },
  );
  cdTable.alloc();
  const layout = cdTable.cfg.vendor.arm!.layout!;
  smmu.setStreamConfig(
    SID,
    encodeSte({
      valid: true,
      config: SteConfig.S1_TRANSLATE,
      s1fmt: layout.s1fmt,
      s1ContextPtr: cdTable.cfg.base,
      s1cdmax: layout.s1cdmax,
      s1dss: SteS1Dss.TERMINATE,
      s1cir: 1,
      s1cor: 1,
      s1csh: 3,
    }),
  );
  const cfgs: IoPgtableCfg[] = [];
  const tables: IoPgtableOps[] = ASIDS.map((asid, i) => {
    // The Linux SMMUv3 driver: leaves by VA, walks (freed tables) by ASID, then CMD_SYNC.
    const cfg: IoPgtableCfg = {
      ias,
      oas: 48,
      pgsizeBitmap: bitmap,
      coherentWalk: true,
      memory,
      allocator,
      vendor: {},
      tlb: {
        flushAll: () => {
          issue({ op: 'TLBI_NH_ASID', vmid: 0, asid });
          sync();
        },
        flushWalk: () => {
          issue({ op: 'TLBI_NH_ASID', vmid: 0, asid });
          sync();
        },
        addPage: (_gather, iova) => {
          issue({
            op: 'TLBI_NH_VA',
            vmid: 0,
            asid,
            address: BigInt(iova),
            leaf: true,
            num: 0,
            scale: 0,
            tg: 0,
            ttl: 0,
          });
          sync();
        },
      },
    };
    const ops = armLpaeS1Format.alloc(cfg);
    cfgs.push(cfg);
    cdTable.write(SSIDS[i]!, cdTable.prepare(cfg, asid));
    return ops;
  });
  return { memory, allocator, smmu, cdTable, tables, cfgs };
}

describe.each(granules)('guest tables and the SMMUv3 model agree ($name granule)', ({ bitmap, sizes }) => {
  it('for every mapped, unmapped and read-only address after random maps and unmaps', () => {
    const window = 2 * sizes[sizes.length - 1]!;
    const granule = sizes[0]!;
    fc.assert(
      fc.property(
        // Input sizes that start the walk at every level the granule allows.
        fc.constantFrom(32, 39, 40, 44, 48),
        fc.array(opArb(sizes), { minLength: 1, maxLength: 16 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (ias, ops, probes) => {
          const { smmu, tables, cfgs, cdTable, allocator, memory } = build(bitmap, ias);
          const touched: number[] = [];
          for (const op of ops) {
            const table = tables[op.pasid]!;
            const iova = (op.slot % (window / op.unit)) * op.unit;
            const size = Math.min(op.count * op.unit, window - iova);
            try {
              if (op.unmap) table.unmap(iova, size);
              else
                table.map(
                  iova,
                  op.paSlot * op.unit,
                  size,
                  op.readOnly ? IommuProt.READ : IommuProt.READ | IommuProt.WRITE,
                );
            } catch {
              // EEXIST and refused block cuts change nothing; agreement is checked below either way.
            }
            touched.push(iova, iova + size - 1, iova + size);
            const addresses = [...touched, ...probes.map((p) => (p * granule + (p % 4093)) % window)];
            for (let t = 0; t < 2; t++) {
              for (const address of addresses) {
                const expected = tables[t]!.iovaToPhys(address);
                const read = smmu.translate({ sid: SID, ssid: SSIDS[t], iova: address, access: 'read' });
                const write = smmu.translate({ sid: SID, ssid: SSIDS[t], iova: address, access: 'write' });
                if (expected === null) {
                  expect(read.ok ? read : read.event.type).toBe(EventType.F_TRANSLATION);
                  expect(write.ok ? write : write.event.type).toBe(EventType.F_TRANSLATION);
                  continue;
                }
                expect(read.ok && read.pa).toBe(expected);
                // Writable exactly when the guest's leaf lacks AP[2] (it was mapped without READ-only).
                const arm = cfgs[t]!.vendor.arm!;
                const steps = referenceWalk(memory, arm.ttbr, arm.granule, ias, address);
                const readOnly = (steps[steps.length - 1]!.pte & 0x80n) !== 0n;
                expect(write.ok ? write.pa : write.event.type).toBe(
                  readOnly ? EventType.F_PERMISSION : expected,
                );
              }
            }
          }
          for (const t of tables) t.free();
          cdTable.free();
          expect(allocator.freeBytes).toBe(RAM);
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('CD maintenance seen by the SMMUv3 model', () => {
  it('a cleared CD faults with C_BAD_CD, an SSID in a leaf never published with C_BAD_SUBSTREAMID', () => {
    const { smmu, tables, cdTable } = build(SZ_4K | SZ_2M | SZ_1G, 48);
    tables[0]!.map(0x1000_0000, 0x2000_0000, SZ_2M, IommuProt.READ);
    const request = { sid: SID, ssid: SSIDS[0], iova: 0x1000_0123, access: 'read' } as const;
    expect(smmu.translate(request)).toMatchObject({ ok: true, pa: 0x2000_0123 });
    cdTable.write(SSIDS[0], null);
    const cleared = smmu.translate(request);
    expect(cleared.ok || cleared.event.type).toBe(EventType.C_BAD_CD);
    // SSID 3000 sits in L1 entry 2, whose leaf was never allocated.
    const unpublished = smmu.translate({ ...request, ssid: 3000 });
    expect(unpublished.ok || unpublished.event.type).toBe(EventType.C_BAD_SUBSTREAMID);
    // Re-installing the CD (the CFGI_CD from sync drops the model's cached copy) restores translation.
    cdTable.write(SSIDS[0], cdTable.prepare(tables[0]!.cfg, ASIDS[0]));
    expect(smmu.translate(request)).toMatchObject({ ok: true, pa: 0x2000_0123 });
  });

  it('an ASID change takes effect through the hitless dword-0 store and its CFGI_CD', () => {
    const { smmu, tables, cdTable, memory } = build(SZ_4K | SZ_2M | SZ_1G, 48);
    tables[1]!.map(0x4000, 0x9000, SZ_4K, IommuProt.READ | IommuProt.WRITE);
    const request = { sid: SID, ssid: SSIDS[1], iova: 0x4008, access: 'write' } as const;
    expect(smmu.translate(request)).toMatchObject({ ok: true, pa: 0x9008 });
    cdTable.write(SSIDS[1], cdTable.prepare(tables[1]!.cfg, 0x77));
    const layout = cdTable.cfg.vendor.arm!.layout!;
    const cd = layout.leaves[1]! + (SSIDS[1] % 1024) * 64;
    expect(Number(memory.readU64(cd) >> 48n)).toBe(0x77);
    expect(smmu.translate(request)).toMatchObject({ ok: true, pa: 0x9008 });
  });
});
