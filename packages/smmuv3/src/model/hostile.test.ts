import { GuestMemory } from '@vmmkit/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCommand } from '../codec/command.js';
import { EventType, eventName } from '../codec/event.js';
import { encodeSte } from '../codec/ste.js';
import { BumpAllocator, createRam, linuxCd, linuxSte, S1Tables, writeCd } from '../testing/host-tables.js';
import { Smmuv3 } from './smmuv3.js';
import type { TranslateResult } from './types.js';

const KNOWN = new Set<string>([...Object.keys(EventType), 'ABORT']);
const RAM = 0x4000_0000;
const RAM_SIZE = 64 * 1024;

function assertWellFormed(result: TranslateResult): void {
  if (result.ok) {
    expect(Number.isSafeInteger(result.pa)).toBe(true);
    expect(result.pageSize).toBeGreaterThanOrEqual(4096);
  } else {
    expect(KNOWN.has(result.event.name)).toBe(true);
    expect(result.event.name).toBe(result.event.type === 0 ? 'ABORT' : eventName(result.event.type));
  }
}

/** Guest RAM filled with attacker bytes; pointers are biased towards RAM so walks go deep. */
const pointerInRam = fc.integer({ min: 0, max: RAM_SIZE / 8 - 1 }).map((i) => BigInt(RAM + i * 8));
const descriptor = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  fc.tuple(pointerInRam, fc.bigInt({ min: 0n, max: 0xfffn })).map(([p, low]) => (p & ~0xfffn) | low),
  fc.tuple(pointerInRam, fc.constantFrom(1n, 3n, 0x403n, 0x443n, 0x4c3n)).map(([p, t]) => (p & ~0xfffn) | t),
);

function hostileMemory(words: bigint[]): GuestMemory {
  const memory = new GuestMemory();
  memory.addBank({ gpa: RAM, size: RAM_SIZE });
  words.forEach((w, i) => {
    memory.writeU64(RAM + ((i * 8) % RAM_SIZE), w);
  });
  return memory;
}

describe('hostile guest structures: the model never throws, never loops, always answers', () => {
  it('random stream tables, STEs, CDs and descriptors in RAM', () => {
    fc.assert(
      fc.property(
        fc.array(descriptor, { minLength: 64, maxLength: 512 }),
        fc.record({
          format: fc.constantFrom('linear' as const, '2-level' as const),
          split: fc.constantFrom(6, 8, 10),
          log2Size: fc.integer({ min: 0, max: 12 }),
          sid: fc.integer({ min: 0, max: 4095 }),
          ssid: fc.option(fc.integer({ min: 0, max: 2 ** 20 - 1 }), { nil: undefined }),
          iova: fc.oneof(
            fc.integer({ min: 0, max: 2 ** 20 }),
            fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          ),
          access: fc.constantFrom('read' as const, 'write' as const, 'exec' as const),
          privileged: fc.boolean(),
          iotlbEntries: fc.constantFrom(0, 16),
        }),
        (words, p) => {
          const memory = hostileMemory(words);
          const smmu = new Smmuv3({ memory, features: { iotlbEntries: p.iotlbEntries } });
          smmu.setStreamTable({ base: RAM, log2Size: p.log2Size, format: p.format, split: p.split });
          const request = {
            sid: p.sid,
            ssid: p.ssid,
            iova: p.iova,
            access: p.access,
            privileged: p.privileged,
          };
          const first = smmu.translate(request);
          assertWellFormed(first);
          assertWellFormed(smmu.translate(request)); // now through the caches
          const steps = smmu.explain(request);
          expect(steps.at(-1)?.label).toBe('result');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('random CDs behind a valid STE, and random commands', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        fc.array(descriptor, { minLength: 8, maxLength: 256 }),
        fc.array(fc.uint8Array({ minLength: 16, maxLength: 16 }), { maxLength: 4 }),
        fc.integer({ min: 0, max: 2 ** 32 }),
        (cd, words, commands, iova) => {
          const memory = hostileMemory(words);
          memory.write(RAM, cd);
          const smmu = new Smmuv3({ memory });
          smmu.setStreamConfig(0, encodeSte(linuxSte({ s1ContextPtr: RAM })));
          assertWellFormed(smmu.translate({ sid: 0, iova, access: 'read' }));
          for (const c of commands) {
            const r = smmu.command(c);
            expect(typeof r.ok).toBe('boolean');
          }
          assertWellFormed(smmu.translate({ sid: 0, iova, access: 'write' }));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('tables that point at themselves end after at most four reads', () => {
    for (const g of [12, 14, 16]) {
      const memory = createRam(4 * 1024 * 1024);
      const alloc = new BumpAllocator(memory, 0x4000_0000);
      const tables = new S1Tables(memory, alloc, g, 48);
      const cd = alloc.alloc(64, 64);
      // One granule whose every entry is a table descriptor pointing back at itself.
      const self = alloc.alloc(2 ** g, 2 ** g);
      writeCd(memory, cd, linuxCd(tables, 1, { ttb0: self }));
      for (let i = 0; i < 2 ** (g - 3); i++) memory.writeU64(self + i * 8, BigInt(self) | 3n);
      const smmu = new Smmuv3({ memory });
      smmu.setStreamConfig(1, encodeSte(linuxSte({ s1ContextPtr: cd })));
      const r = smmu.translate({ sid: 1, iova: 0x1234_5678, access: 'read' });
      // At level 3 the self-pointer reads as a page descriptor without AF.
      expect(r).toMatchObject({ ok: false, event: { name: 'F_ACCESS' } });
      const walk = smmu
        .explain({ sid: 1, iova: 0x1234_5678, access: 'read' })
        .find((s) => s.label === 'walk');
      expect(walk?.children?.length).toBe(4 - tables.startLevel);
      smmu.command(encodeCommand({ op: 'TLBI_NH_ALL', vmid: 0 }));
    }
  });

  it('pointers outside RAM become fetch events, never exceptions', () => {
    const memory = createRam(1024 * 1024);
    const smmu = new Smmuv3({ memory });
    const name = (r: TranslateResult) => (r.ok ? 'ok' : r.event.name);
    smmu.setStreamTable({ base: 0x1000_0000, log2Size: 4, format: 'linear' });
    expect(name(smmu.translate({ sid: 1, iova: 0, access: 'read' }))).toBe('F_STE_FETCH');
    // A table that starts where RAM ends (the SMMU aligns STRTAB_BASE to the 1 KiB table size,
    // so a table cannot straddle the end of this 1 MiB bank).
    smmu.setStreamTable({ base: 0x4000_0000 + 1024 * 1024, log2Size: 4, format: 'linear' });
    expect(name(smmu.translate({ sid: 1, iova: 0, access: 'read' }))).toBe('F_STE_FETCH');
    smmu.setStreamConfig(1, encodeSte(linuxSte({ s1ContextPtr: 2 ** 47 })));
    expect(name(smmu.translate({ sid: 1, iova: 0, access: 'read' }))).toBe('F_CD_FETCH');
    // IHI 0070 §3.4.3 (SMMUv3.1+): a CD fetch beyond the OAS is C_BAD_STE, not a fetch abort.
    smmu.setStreamConfig(1, encodeSte(linuxSte({ s1ContextPtr: 2 ** 51 })));
    expect(name(smmu.translate({ sid: 1, iova: 0, access: 'read' }))).toBe('C_BAD_STE');
  });
});

describe('explain', () => {
  it('lists STE, CD, every level with its table, index and descriptor, then the result', () => {
    const memory = createRam();
    const alloc = new BumpAllocator(memory, 0x4000_0000);
    const strtab = alloc.alloc(64 * 16, 1024);
    const tables = new S1Tables(memory, alloc);
    const cd = alloc.alloc(64, 64);
    writeCd(memory, cd, linuxCd(tables, 9));
    memory.write(strtab + 64 * 3, encodeSte(linuxSte({ s1ContextPtr: cd })));
    const leaf = tables.map(0x80_8060_4000, 0x4ecb_a000);
    const smmu = new Smmuv3({ memory });
    smmu.setStreamTable({ base: strtab, log2Size: 4, format: 'linear' });
    const steps = smmu.explain({ sid: 3, iova: 0x80_8060_4567, access: 'read' });
    expect(steps.map((s) => s.label)).toEqual(['STE', 'CD', 'walk', 'result']);
    expect(steps[0]).toMatchObject({
      address: strtab + 64 * 3,
      fields: { config: 5, s1cdmax: 0, valid: true },
    });
    expect(steps[1]).toMatchObject({
      address: cd,
      fields: { asid: 9, t0sz: 16, ttb0: `0x${tables.root.toString(16)}` },
    });
    const levels = steps[2]!.children!;
    expect(levels.map((s) => s.label)).toEqual(['L0', 'L1', 'L2', 'L3']);
    expect(levels.map((s) => s.fields?.index)).toEqual([1, 2, 3, 4]);
    expect(levels[0]).toMatchObject({ address: tables.root + 8, fields: { table: tables.root } });
    expect(levels[3]).toMatchObject({ address: leaf });
    expect(steps[3]).toMatchObject({ value: 'pa 0x4ecba567', fields: { level: 3, pageSize: 4096 } });
    // explain neither reads nor fills caches, nor counts.
    expect(smmu.stats.translations).toBe(0);
    expect(smmu.stats.walks).toBe(0);
    const fault = smmu.explain({ sid: 5, iova: 0, access: 'read' });
    expect(fault.at(-1)).toMatchObject({ label: 'result', value: 'fault C_BAD_STE' });
  });
});
