import { GuestMemory, isVmmError } from '@vmmkit/core';
import { beforeEach, describe, expect, it } from 'vitest';
import { EventType } from '../codec/event.js';
import { encodeL1CdDesc, encodeL1StreamDesc } from '../codec/l1.js';
import { encodeSte } from '../codec/ste.js';
import {
  BumpAllocator,
  createRam,
  linuxCd,
  linuxSte,
  S1Tables,
  writeCd,
  writeSte,
} from '../testing/host-tables.js';
import { Smmuv3 } from './smmuv3.js';

/** The QEMU qtest scenario, byte for byte (reference §7.4). */
function qtestMachine() {
  const memory = new GuestMemory();
  memory.addBank({ gpa: 0x4000_0000, size: 0x1000_0000 });
  const put = (at: number, dwords: bigint[]) => {
    dwords.forEach((d, i) => {
      memory.writeU64(at + 8 * i, d);
    });
  };
  const sid = 0x10;
  const strtab = 0x4e17_9000;
  put(strtab + 64 * sid, [0x000000004e178fcbn, 0n, 0x000d009400000000n]);
  put(0x4e17_8fc0, [0x1e206204c0000010n, 0x000000004e4d0001n, 0x1n, 0n]);
  put(0x4e4d_0008, [0x800000004e4d1003n]);
  put(0x4e4d_1010, [0x800000004e4d2003n]);
  put(0x4e4d_2018, [0x800000004e4d3003n]);
  put(0x4e4d_3020, [0x040000004ecba763n]);
  const smmu = new Smmuv3({ memory, oas: 44 });
  smmu.setStreamTable({ base: strtab, log2Size: 5, format: 'linear' });
  return { memory, smmu, sid, put };
}

type Machine = ReturnType<typeof qtestMachine>;

describe('QEMU qtest scenario (reference §7.4, §9.4)', () => {
  it('IOVA 0x8080604567 lands at PA 0x4ecba567', () => {
    const { smmu, sid } = qtestMachine();
    const result = smmu.translate({ sid, iova: 0x80_8060_4567, access: 'write' });
    expect(result).toEqual({
      ok: true,
      pa: 0x4ecb_a567,
      perm: { read: true, write: true, exec: true },
      level: 3,
      pageSize: 4096,
    });
  });

  it.each<[string, string, (m: Machine) => void]>([
    ['STE V=0', 'C_BAD_STE', (m: Machine) => m.put(0x4e17_9000 + 64 * 0x10, [0x4e178fcan])],
    ['CD V=0', 'C_BAD_CD', (m: Machine) => m.put(0x4e17_8fc0, [0x1e20620440000010n])],
    ['CD AA64=0', 'C_BAD_CD', (m: Machine) => m.put(0x4e17_8fc0, [0x1e2060_04c0000010n])],
    ['CD T0SZ=15', 'C_BAD_CD', (m: Machine) => m.put(0x4e17_8fc0, [0x1e206204c000000fn])],
    ['CD T0SZ=40', 'C_BAD_CD', (m: Machine) => m.put(0x4e17_8fc0, [0x1e206204c0000028n])],
    ['CD TG0=3', 'C_BAD_CD', (m: Machine) => m.put(0x4e17_8fc0, [0x1e206204c00000d0n])],
    [
      'CD IPS=2 with TTB0 at 2^48',
      'C_BAD_CD',
      (m: Machine) => m.put(0x4e17_8fc0, [0x1e206202c0000010n, 0x0001_0000_0000_0000n]),
    ],
    ['S1ContextPtr unbacked', 'F_CD_FETCH', (m: Machine) => m.put(0x4e17_9400, [0x0000_0000_1000_000bn])],
    ['L3 entry 0', 'F_TRANSLATION', (m: Machine) => m.put(0x4e4d_3020, [0n])],
    ['L3 type 0b01', 'F_TRANSLATION', (m: Machine) => m.put(0x4e4d_3020, [0x040000004ecba761n])],
    ['L3 AF clear', 'F_ACCESS', (m: Machine) => m.put(0x4e4d_3020, [0x040000004ecba363n])],
    ['L3 AP[2]=1, write', 'F_PERMISSION', (m: Machine) => m.put(0x4e4d_3020, [0x040000004ecba7e3n])],
    ['L3 output ≥ 2^44 (IPS 4)', 'F_ADDR_SIZE', (m: Machine) => m.put(0x4e4d_3020, [0x0400_1000_0000_0763n])],
    ['L1 entry unbacked', 'F_WALK_EABT', (m: Machine) => m.put(0x4e4d_1010, [0x0000_0000_1000_0003n])],
  ])('%s → %s', (_name, expected, mutate) => {
    const machine = qtestMachine();
    const sid = machine.sid;
    mutate(machine);
    const result = machine.smmu.translate({ sid, iova: 0x80_8060_4567, access: 'write' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.event.name).toBe(expected);
    expect(result.event.type).toBe(EventType[expected as keyof typeof EventType]);
    expect(result.event.sid).toBe(sid);
    expect(result.recorded).toBe(true);
    if (expected.startsWith('F_') && expected !== 'F_CD_FETCH') {
      expect(result.event.address).toBe(0x80_8060_4567);
      expect(result.event.read).toBe(false);
    }
    if (expected === 'F_WALK_EABT') {
      expect(result.event.fetchAddress).toBe(0x1000_0000 + 3 * 8); // the L2-table entry
      expect(result.event.eventClass).toBe(1);
    }
    if (expected === 'F_CD_FETCH') expect(result.event.fetchAddress).toBe(0x1000_0000);
  });

  it('STRTAB_BASE bits below the table size are ignored (§6.3.24): the SMMU aligns the base', () => {
    const { smmu, sid } = qtestMachine();
    const strtab = 0x4e17_9000;
    // Linear, LOG2SIZE 5: a 2 KiB table, so ADDR[10:0] are treated as zero.
    smmu.setStreamTable({ base: strtab + 0x7c0, log2Size: 5, format: 'linear' });
    expect(smmu.translate({ sid, iova: 0x8080604567, access: 'read' })).toMatchObject({
      ok: true,
      pa: 0x4ecba567,
    });
    expect(smmu.explain({ sid, iova: 0x8080604567, access: 'read' })[0]).toMatchObject({
      label: 'STE',
      address: strtab + 64 * sid,
    });
  });

  it('a two-level L1 stream table is aligned to the larger of 64 bytes and its size', () => {
    const { memory, smmu, sid } = qtestMachine();
    const l1 = 0x4e20_0000;
    // LOG2SIZE 10, SPLIT 6: 16 L1 descriptors, 128 bytes; the STE array of Span 7 holds SIDs 0..63.
    memory.write(l1, encodeL1StreamDesc({ span: 7, l2ptr: 0x4e17_9000 }));
    smmu.setStreamTable({ base: l1 + 0x40, log2Size: 10, format: '2-level', split: 6 });
    expect(smmu.translate({ sid, iova: 0x8080604567, access: 'read' })).toMatchObject({ pa: 0x4ecba567 });
    // LOG2SIZE 6, SPLIT 6: one descriptor, but still 64-byte aligned (not 8).
    smmu.setStreamTable({ base: l1 + 0x40, log2Size: 6, format: '2-level', split: 6 });
    expect(smmu.translate({ sid, iova: 0x8080604567, access: 'read' })).toMatchObject({
      ok: false,
      event: { name: 'C_BAD_STREAMID' }, // the descriptor at l1 + 0x40 is zero: Span 0
    });
  });

  it('SID ≥ 2^LOG2SIZE is C_BAD_STREAMID', () => {
    const { smmu } = qtestMachine();
    const result = smmu.translate({ sid: 32, iova: 0x1000, access: 'read' });
    expect(!result.ok && result.event.name).toBe('C_BAD_STREAMID');
  });

  it('STE Config=abort terminates without a record', () => {
    const machine = qtestMachine();
    machine.put(0x4e17_9000 + 64 * 0x10, [0x4e178fc1n]);
    const result = machine.smmu.translate({ sid: 0x10, iova: 0x80_8060_4567, access: 'read' });
    expect(result).toMatchObject({ ok: false, recorded: false, event: { type: 0, name: 'ABORT' } });
  });

  it('CD.R=0 aborts translation faults without recording them', () => {
    const machine = qtestMachine();
    machine.put(0x4e17_8fc0, [0x1e204204c0000010n]);
    machine.put(0x4e4d_3020, [0n]);
    const result = machine.smmu.translate({ sid: 0x10, iova: 0x80_8060_4567, access: 'read' });
    expect(result).toMatchObject({ ok: false, recorded: false, event: { name: 'F_TRANSLATION' } });
  });

  it('IOVA with bit 48 set (T0SZ 16) is F_TRANSLATION', () => {
    const { smmu } = qtestMachine();
    const result = smmu.translate({ sid: 0x10, iova: 2 ** 48 + 0x4567, access: 'read' });
    expect(!result.ok && result.event.name).toBe('F_TRANSLATION');
  });
});

describe('stream table and substreams', () => {
  let memory: GuestMemory;
  let alloc: BumpAllocator;
  let tables: S1Tables;
  beforeEach(() => {
    memory = createRam();
    alloc = new BumpAllocator(memory, 0x4000_0000);
    tables = new S1Tables(memory, alloc);
    tables.map(0x1000, 0x4100_0000);
  });

  it('two-level stream table: Span, L2Ptr, out-of-span StreamIDs', () => {
    const l1 = alloc.alloc(8 * 4, 64);
    const l2 = alloc.alloc(64 * 256, 64 * 256); // §5.1: the L2 array is aligned to its size
    const cd = alloc.alloc(64);
    writeCd(memory, cd, linuxCd(tables, 1));
    memory.write(l1 + 8 * 2, encodeL1StreamDesc({ span: 9, l2ptr: l2 }));
    memory.write(l1 + 8 * 3, encodeL1StreamDesc({ span: 2, l2ptr: l2 }));
    writeSte(memory, l2 + 64 * 5, linuxSte({ s1ContextPtr: cd }));
    const smmu = new Smmuv3({ memory });
    smmu.setStreamTable({ base: l1, log2Size: 10, format: '2-level', split: 8 });
    expect(smmu.translate({ sid: 2 * 256 + 5, iova: 0x1234, access: 'read' })).toMatchObject({
      ok: true,
      pa: 0x4100_0234,
    });
    const name = (sid: number) => {
      const r = smmu.translate({ sid, iova: 0x1234, access: 'read' });
      return r.ok ? 'ok' : r.event.name;
    };
    expect(name(2 * 256 + 6)).toBe('C_BAD_STE'); // in span, STE all zero
    expect(name(1 * 256 + 5)).toBe('C_BAD_STREAMID'); // Span 0
    expect(name(3 * 256 + 1)).toBe('C_BAD_STE'); // Span 2: 2 STEs, index 1 is in range but zero
    expect(name(3 * 256 + 2)).toBe('C_BAD_STREAMID'); // beyond Span 2
    expect(name(1024)).toBe('C_BAD_STREAMID'); // ≥ 2^LOG2SIZE
    memory.write(l1, encodeL1StreamDesc({ span: 9, l2ptr: 0x1000_0000 }));
    expect(name(5)).toBe('F_STE_FETCH'); // L2 table outside RAM
  });

  it('S1CDMax, S1DSS and substream checks', () => {
    const cdTable = alloc.alloc(64 * 16, 64 * 16);
    writeCd(memory, cdTable, linuxCd(tables, 1));
    const other = new S1Tables(memory, alloc);
    other.map(0x1000, 0x4200_0000);
    writeCd(memory, cdTable + 64 * 3, linuxCd(other, 3));
    const smmu = new Smmuv3({ memory, ssidBits: 4 });
    const run = (s1dss: number, ssid?: number) => {
      smmu.setStreamConfig(7, writeSteBytes({ s1ContextPtr: cdTable, s1cdmax: 4, s1dss }));
      const r = smmu.translate({ sid: 7, ssid, iova: 0x1008, access: 'read' });
      return r.ok ? r.pa : r.event.name;
    };
    expect(run(2)).toBe(0x4100_0008); // no SSID → CD 0
    expect(run(2, 3)).toBe(0x4200_0008);
    expect(run(2, 0)).toBe('F_STREAM_DISABLED'); // SSID 0 reserved by S1DSS=SSID0 (§7.3.7)
    expect(run(0, 0)).toBe(0x4100_0008); // S1DSS terminate: SSID 0 is an ordinary substream
    expect(run(0)).toBe('F_STREAM_DISABLED');
    expect(run(1)).toBe(0x1008); // bypass stage 1
    expect(run(2, 16)).toBe('C_BAD_SUBSTREAMID'); // ≥ 2^S1CDMax
    expect(run(2, 5)).toBe('C_BAD_CD'); // CD 5 is zero
    expect(run(3)).toBe('F_STREAM_DISABLED'); // S1DSS 0b11 behaves as terminate
    smmu.setStreamConfig(7, writeSteBytes({ s1ContextPtr: cdTable, s1cdmax: 0 }));
    expect(smmu.translate({ sid: 7, ssid: 1, iova: 0x1008, access: 'read' })).toMatchObject({
      ok: false,
      event: { name: 'C_BAD_SUBSTREAMID', ssid: 1, ssv: false }, // §7.3.9: no SSV qualifier
    });
    smmu.setStreamConfig(7, writeSteBytes({ s1ContextPtr: cdTable, s1cdmax: 5 }));
    expect(smmu.translate({ sid: 7, iova: 0x1008, access: 'read' })).toMatchObject({
      ok: false,
      event: { name: 'C_BAD_STE' }, // S1CDMax above SSIDSIZE 4
    });
  });

  it('two-level CD tables (S1Fmt 1 and 2) with thousands of substreams', () => {
    for (const [s1fmt, split] of [
      [1, 6],
      [2, 10],
    ] as const) {
      const s1cdmax = 12;
      const l1 = alloc.alloc(8 * 2 ** (s1cdmax - split), 8 * 2 ** (s1cdmax - split));
      const leaves = new Map<number, number>();
      const roots: number[] = [];
      const n = 3000;
      for (let ssid = 1; ssid <= n; ssid++) {
        const l1Index = ssid >> split;
        let leaf = leaves.get(l1Index);
        if (leaf === undefined) {
          leaf = alloc.alloc(64 * 2 ** split, 64 * 2 ** split);
          leaves.set(l1Index, leaf);
          memory.write(l1 + 8 * l1Index, encodeL1CdDesc({ valid: true, l2ptr: leaf }));
        }
        // Each substream maps IOVA 0x1000 to its own page through its own single-leaf tables.
        const t = ssid % 50 === 0 ? new S1Tables(memory, alloc) : tables;
        if (t !== tables) t.map(0x1000, 0x4800_0000 + ssid * 4096);
        roots[ssid] = t.root;
        writeCd(memory, leaf + 64 * (ssid % 2 ** split), linuxCd(t, ssid));
      }
      const smmu = new Smmuv3({ memory });
      smmu.setStreamConfig(1, writeSteBytes({ s1ContextPtr: l1, s1cdmax, s1fmt }));
      for (let ssid = 1; ssid <= n; ssid++) {
        const r = smmu.translate({ sid: 1, ssid, iova: 0x1010, access: 'read' });
        const expected = ssid % 50 === 0 ? 0x4800_0000 + ssid * 4096 + 0x10 : 0x4100_0010;
        if (!r.ok || r.pa !== expected) throw new Error(`ssid ${ssid}: ${JSON.stringify(r)}`);
      }
      // An L1 entry never written: C_BAD_SUBSTREAMID.
      const r = smmu.translate({ sid: 1, ssid: 2 ** s1cdmax - 1, iova: 0x1010, access: 'read' });
      expect(!r.ok && r.event.name).toBe('C_BAD_SUBSTREAMID');
      expect(smmu.stats.cdCacheMisses).toBeGreaterThanOrEqual(n);
    }
  });

  it('rejects bad API input with VmmError', () => {
    const smmu = new Smmuv3({ memory });
    const bad = [
      () => new Smmuv3({ memory, oas: 47 }),
      () => new Smmuv3({ memory, ssidBits: 21 }),
      () => new Smmuv3({ memory, features: { iotlbEntries: 1000 } }),
      () => smmu.setStreamTable({ base: 0x1001, log2Size: 4, format: 'linear' }),
      () => smmu.setStreamTable({ base: 0x1000, log2Size: 4, format: '2-level', split: 7 }),
      () => smmu.setStreamConfig(1, new Uint8Array(32)),
      () => smmu.translate({ sid: 1, iova: -1, access: 'read' }),
      () => smmu.translate({ sid: 1, iova: 0, access: 'fetch' as 'read' }),
      () => smmu.translate({ sid: 1, ssid: 2 ** 20, iova: 0, access: 'read' }),
    ];
    for (const f of bad) {
      let error: unknown;
      try {
        f();
      } catch (e) {
        error = e;
      }
      expect(isVmmError(error, 'EINVAL')).toBe(true);
    }
  });
});

function writeSteBytes(fields: Parameters<typeof linuxSte>[0]): Uint8Array {
  return encodeSte(linuxSte(fields));
}
