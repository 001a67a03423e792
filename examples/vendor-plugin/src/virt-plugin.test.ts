import {
  BitmapPageAllocator,
  createContainer,
  createIotlbGather,
  createNestedTranslation,
  DmaAccess,
  GuestMemory,
  IommuProt,
  type IoPgtableCfg,
  type IoPgtableRegistry,
  type NestedBackendRegistry,
  NestedFaultReason,
  type NestedTable,
  NO_PASID,
  TOKENS,
} from '@vmmkit/core';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { virtPlugin } from './plugin.js';
import { PTE_READ, PTE_VALID } from './virt-format.js';

const RAM = 0x8000_0000;
const RAM_SIZE = 0x100_0000;

function machine() {
  const memory = new GuestMemory();
  memory.addBank({ gpa: RAM, size: RAM_SIZE });
  const allocator = new BitmapPageAllocator(memory, { base: RAM, size: RAM_SIZE / 2 });
  const container = createContainer([virtPlugin]);
  const tlb = { flushAll: vi.fn(), flushWalk: vi.fn(), addPage: vi.fn() };
  const cfg: IoPgtableCfg = {
    ias: 48,
    oas: 48,
    pgsizeBitmap: 0x4020_1000,
    coherentWalk: true,
    tlb,
    memory,
    allocator,
    vendor: {},
  };
  const ops = container.get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry).alloc('virt', cfg);
  const backend = container.get<NestedBackendRegistry>(TOKENS.NestedBackendRegistry).find(3)!;
  const attach = () => {
    const result = backend.attach({ memory, endpoint: 1, payload: virtAttach(cfg), pasidBits: 0 });
    if (!result.ok) throw new Error(result.reason);
    return result.table;
  };
  return { memory, allocator, cfg, ops, backend, attach, tlb };
}

function virtAttach(cfg: IoPgtableCfg): Uint8Array {
  return createContainer([virtPlugin]).get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry).get('virt')
    .attachDescriptor!(cfg, 0).payload;
}

function hostTranslate(table: NestedTable, iova: number, access: DmaAccess = DmaAccess.READ) {
  const out = createNestedTranslation();
  return table.translate(NO_PASID, iova, access, out)
    ? { ok: true as const, pa: out.pa }
    : { ok: false as const, fault: out.fault };
}

describe('the virt vendor plugin', () => {
  it('registers format 3 on both sides through its ContainerModule alone', () => {
    const { backend } = machine();
    expect(backend.describe(0)).toMatchObject({
      format: 3,
      kind: 'page-table',
      pasidBits: 0,
      pageSizeMask: 0x4020_1000n,
    });
  });

  it('writes the entries the format specifies (valid/table/read/write, 2 MiB block at level 2)', () => {
    const { ops, cfg, memory, attach } = machine();
    ops.map(0x4020_0000, RAM + 0x20_0000, 0x20_0000, IommuProt.READ);
    const pgd = cfg.vendor.virt!.pgd;
    const l0 = memory.readU64(pgd + 0 * 8);
    expect(l0 & 3n).toBe(3n);
    const l1 = memory.readU64(Number(l0 & 0xf_ffff_ffff_f000n) + 1 * 8);
    expect(l1 & 3n).toBe(3n);
    const l2 = memory.readU64(Number(l1 & 0xf_ffff_ffff_f000n) + 1 * 8);
    expect(l2).toBe(BigInt(RAM + 0x20_0000) | BigInt(PTE_VALID | PTE_READ));
    expect(ops.iovaToPhys(0x4020_1234)).toBe(RAM + 0x20_1234);
    expect(hostTranslate(attach(), 0x4030_5678)).toEqual({ ok: true, pa: RAM + 0x30_5678 });
  });

  it('refuses to map over a mapping and to split a block, changing nothing', () => {
    const { ops } = machine();
    ops.map(0x20_0000, RAM, 0x20_0000, IommuProt.READ | IommuProt.WRITE);
    expect(() => ops.map(0x1f_f000, RAM + 0x40_0000, 0x2000, IommuProt.READ)).toThrow(/EEXIST/);
    expect(ops.iovaToPhys(0x1f_f000)).toBeNull();
    expect(() => ops.unmap(0x20_0000, 0x1000)).toThrow(/split the 0x200000 block/);
    expect(ops.iovaToPhys(0x20_0000)).toBe(RAM);
  });

  it('host walker and guest iovaToPhys agree after random maps and unmaps (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            unmap: fc.boolean(),
            // Mix arbitrary pages with 2 MiB aligned runs so blocks are built and split too.
            page: fc.oneof(fc.integer({ min: 0, max: 2047 }), fc.constantFrom(0, 512, 1024, 1536)),
            pages: fc.oneof(fc.integer({ min: 1, max: 600 }), fc.constantFrom(512, 1024)),
            out: fc.integer({ min: 0, max: 1023 }),
            write: fc.boolean(),
          }),
          { maxLength: 25 },
        ),
        (ops) => {
          const m = machine();
          const table = m.attach();
          for (const op of ops) {
            const iova = 0x1_0000_0000 + op.page * 0x1000;
            const size = op.pages * 0x1000;
            try {
              if (op.unmap) m.ops.unmap(iova, size);
              else
                m.ops.map(
                  iova,
                  RAM + RAM_SIZE / 2 + op.out * 0x1000 - (op.out % 512) * 0x1000,
                  size,
                  IommuProt.READ | (op.write ? IommuProt.WRITE : 0),
                );
            } catch {
              // Refused requests (overlap, split block, out of space) change nothing; checked below.
            }
            table.invalidate({
              granularity: 'domain',
              caches: { iotlb: true, devIotlb: false, pasid: false },
              leaf: false,
              virtStart: 0n,
              nrPages: 0n,
              granule: 12,
            });
          }
          for (let page = 0; page < 2048 + 600; page += 7) {
            const iova = 0x1_0000_0000 + page * 0x1000 + 0x123;
            const guest = m.ops.iovaToPhys(iova);
            const host = hostTranslate(table, iova);
            if (guest === null) expect(host).toEqual({ ok: false, fault: NestedFaultReason.PTE_FETCH });
            else expect(host).toEqual({ ok: true, pa: guest });
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('keeps a stale translation until INVALIDATE, as hardware would', () => {
    const { ops, attach } = machine();
    const table = attach();
    ops.map(0x1000, RAM + 0x5000, 0x1000, IommuProt.READ);
    expect(hostTranslate(table, 0x1000)).toEqual({ ok: true, pa: RAM + 0x5000 });
    const gather = createIotlbGather();
    ops.unmap(0x1000, 0x1000, gather);
    ops.map(0x1000, RAM + 0x9000, 0x1000, IommuProt.READ);
    expect(hostTranslate(table, 0x1000)).toEqual({ ok: true, pa: RAM + 0x5000 });
    table.invalidate({
      granularity: 'va',
      caches: { iotlb: true, devIotlb: false, pasid: false },
      leaf: true,
      virtStart: 0x1000n,
      nrPages: 1n,
      granule: 12,
    });
    expect(hostTranslate(table, 0x1000)).toEqual({ ok: true, pa: RAM + 0x9000 });
  });

  it('answers hostile tables with faults: pointers outside RAM, self-loops, permissions, PASIDs', () => {
    const { memory, cfg, ops, attach } = machine();
    ops.map(0x1000, RAM, 0x1000, IommuProt.READ);
    const table = attach();
    expect(hostTranslate(table, 0x1000, DmaAccess.WRITE)).toEqual({
      ok: false,
      fault: NestedFaultReason.PERMISSION,
    });
    const out = createNestedTranslation();
    expect(table.translate(5, 0x1000, DmaAccess.READ, out)).toBe(false);
    expect(out.fault).toBe(NestedFaultReason.DOMAIN);
    expect(hostTranslate(table, 2 ** 48)).toEqual({ ok: false, fault: NestedFaultReason.OOR_ADDRESS });
    const pgd = cfg.vendor.virt!.pgd;
    // L0 entry 1 points outside guest RAM; L0 entry 2 points at the pgd itself (a loop).
    memory.writeU64(pgd + 8, 0x7000_0000n | 3n);
    memory.writeU64(pgd + 16, BigInt(pgd) | 3n);
    expect(hostTranslate(table, 2 ** 39)).toEqual({ ok: false, fault: NestedFaultReason.WALK_EABT });
    expect(hostTranslate(table, 2 * 2 ** 39).ok).toBe(false);
    fc.assert(
      fc.property(
        fc.array(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { minLength: 512, maxLength: 512 }),
        fc.integer({ min: 0, max: 2 ** 48 - 1 }),
        (words, iova) => {
          for (const [i, w] of words.entries()) memory.writeU64(pgd + i * 8, w);
          table.invalidate({
            granularity: 'domain',
            caches: { iotlb: true, devIotlb: false, pasid: false },
            leaf: false,
            virtStart: 0n,
            nrPages: 0n,
            granule: 12,
          });
          const result = hostTranslate(table, iova);
          if (result.ok) expect(memory.isAccessible(result.pa, 1) || result.pa < 2 ** 52).toBe(true);
          expect(table.explain(NO_PASID, iova, DmaAccess.READ).at(-1)!.label).toBe('result');
        },
      ),
      { numRuns: 200 },
    );
  });

  it('validates ATTACH_TABLE payloads: reserved bytes, alignment, RAM', () => {
    const { backend, memory, cfg } = machine();
    const good = virtAttach(cfg);
    const attach = (payload: Uint8Array) => backend.attach({ memory, endpoint: 1, payload, pasidBits: 0 });
    expect(attach(good).ok).toBe(true);
    const reserved = good.slice();
    reserved[20] = 1;
    expect(attach(reserved)).toMatchObject({ ok: false, status: 'inval' });
    const misaligned = good.slice();
    misaligned[8] = 0x10;
    expect(attach(misaligned)).toMatchObject({ ok: false, status: 'inval' });
    const outside = good.slice();
    new DataView(outside.buffer).setBigUint64(8, 0x1000n, true);
    expect(attach(outside)).toMatchObject({ ok: false, status: 'fault' });
  });

  it('frees every table page', () => {
    const { ops, allocator } = machine();
    const before = allocator.freeBytes;
    ops.map(0x7f00_0000_0000, RAM, 0x40_0000, IommuProt.READ);
    ops.map(0x1000, RAM, 0x3000, IommuProt.WRITE);
    expect(allocator.freeBytes).toBeLessThan(before);
    ops.free();
    expect(allocator.freeBytes).toBe(before + 0x1000);
  });
});
