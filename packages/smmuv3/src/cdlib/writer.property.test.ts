import { BitmapPageAllocator, GuestMemory, type IoPgtableCfg, PasidTableLibrary } from '@vmmkit/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SZ_4K } from '../lpae/geometry.js';
import { CD_BYTES } from './layout.js';
import { type ArmCdContext, armSmmuV3PasidVendor, writeArmCd } from './vendor.js';

/** Guest memory that reports every 32-bit store, so the test sees each state the SMMU could fetch. */
class WatchedMemory extends GuestMemory {
  onStore: ((gpa: number) => void) | null = null;
  override writeU32(gpa: number, value: number): void {
    super.writeU32(gpa, value);
    this.onStore?.(gpa);
  }
}

const BASE = 0x4000_0000;
const RAM = 4 * 2 ** 20;

function pgtable(ttbr: number, tsz: number): IoPgtableCfg {
  return {
    vendor: {
      arm: {
        ttbr,
        tcr: { tsz, tg: 0, irgn: 1, orgn: 1, sh: 3, ips: 5 },
        mair: 0xf404ff44n,
        granule: SZ_4K,
        startLevel: 0,
        levels: 4,
      },
    },
  } as IoPgtableCfg;
}

const opArb = fc.record({
  ssid: fc.constantFrom(0, 1, 1023, 1024, 2047, 3000, 4095),
  clear: fc.boolean(),
  asid: fc.constantFrom(1, 2, 0x1e20, 0xffff),
  ttbr: fc.constantFrom(0x8000_0000, 0x9000_0000, 0x1_2345_6000),
  tsz: fc.constantFrom(16, 24),
});

describe('CD writes never expose a mixed CD (Linux arm_smmu_write_entry invariant, §3.4 / §9.2)', () => {
  it('every store leaves the CD invalid, the old CD or the new CD; syncs match the kind of change', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 30 }), (ops) => {
        const memory = new WatchedMemory();
        memory.addBank({ gpa: BASE, size: RAM });
        const allocator = new BitmapPageAllocator(memory, { base: BASE, size: RAM });
        let syncs = 0;
        let check: (() => void) | null = null;
        const table = new PasidTableLibrary([armSmmuV3PasidVendor]).registerPasidTable<ArmCdContext>(
          'arm-smmu-v3',
          { name: 'smmu', memory, allocator, features: { ssidBits: 12, cd2l: true } },
          null,
          {
            sync: (_cookie, _ssid, leaf) => {
              if (leaf) syncs++;
              check?.();
            },
          },
        );
        table.alloc();
        const committed = new Map<number, bigint[]>();
        const readCd = (gpa: number) => [0, 1, 2, 3, 4, 5, 6, 7].map((i) => memory.readU64(gpa + 8 * i));
        const cdGpa = (ssid: number) => {
          const l1 = memory.readU64(table.cfg.base + 8 * (ssid >> 10));
          return (l1 & 1n) === 0n ? 0 : Number(l1 & 0x000f_ffff_ffff_f000n) + (ssid % 1024) * CD_BYTES;
        };
        for (const op of ops) {
          const before = committed.get(op.ssid) ?? null;
          const ctx = op.clear ? null : table.prepare(pgtable(op.ttbr, op.tsz), op.asid);
          let target: bigint[] | null = null;
          check = () => {
            const at = cdGpa(op.ssid);
            if (at === 0) return;
            const now = readCd(at);
            if ((now[0]! & 0x8000_0000n) === 0n) return;
            const same = (w: bigint[] | null) => w?.every((d, i) => d === now[i]) === true;
            expect(same(before) || target === null || same(target)).toBe(true);
            if (target === null) expect(same(before)).toBe(true);
          };
          // Learn the target from a dry encode: write to a scratch table first.
          if (ctx) {
            const scratch = new PasidTableLibrary([armSmmuV3PasidVendor]).registerPasidTable<ArmCdContext>(
              'arm-smmu-v3',
              { name: 'scratch', memory, allocator, features: { ssidBits: 0 } },
              null,
              { sync: () => {} },
            );
            scratch.alloc();
            scratch.write(0, ctx);
            target = readCd(scratch.cfg.base);
            scratch.free();
          }
          memory.onStore = check;
          syncs = 0;
          const kind = writeArmCd(table.cfg, op.ssid, ctx);
          memory.onStore = null;
          const sameWords = (a: bigint[] | null, b: bigint[] | null) =>
            a !== null && b !== null && a.every((d, i) => d === b[i]);
          const differing =
            before && target ? before.reduce((n, d, i) => n + (d === target![i] ? 0 : 1), 0) : -1;
          if (ctx === null) {
            expect(kind).toBe(before ? 'clear' : 'unchanged');
            if (before) committed.delete(op.ssid);
            const at = cdGpa(op.ssid);
            if (at !== 0) expect(readCd(at)).toEqual(new Array(8).fill(0n));
          } else {
            expect(readCd(cdGpa(op.ssid))).toEqual(target);
            if (!before) expect([kind, syncs]).toEqual(['install', 2]);
            else if (sameWords(before, target)) expect([kind, syncs]).toEqual(['unchanged', 0]);
            else if (kind === 'hitless') expect([differing, syncs]).toEqual([1, 1]);
            else expect([kind, syncs]).toEqual(['breaking', 3]);
            committed.set(op.ssid, target!);
          }
        }
        table.free();
        expect(allocator.freeBytes).toBe(RAM);
      }),
      { numRuns: 40 },
    );
  });
});
