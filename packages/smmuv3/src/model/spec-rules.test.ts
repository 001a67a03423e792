/**
 * Rules of IHI 0070 where a reading of the architecture differs from QEMU's model (reference
 * §10): reserved encodings that "behave as" another, SMMU-originated addresses beyond the OAS
 * (§3.4.3), the stall configuration (§5.5) and the fields each event record carries (§7.3).
 */
import { describe, expect, it } from 'vitest';
import { encodeL1CdDesc } from '../codec/l1.js';
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
import type { TranslateResult } from './types.js';

function setup(oas = 48) {
  const memory = createRam();
  const alloc = new BumpAllocator(memory, 0x4000_0000);
  const tables = new S1Tables(memory, alloc);
  tables.map(0x1000, 0x4100_0000);
  const cdTable = alloc.alloc(64 * 16, 64 * 16);
  writeCd(memory, cdTable, linuxCd(tables, 1));
  writeCd(memory, cdTable + 64 * 2, linuxCd(tables, 2));
  const smmu = new Smmuv3({ memory, oas });
  const name = (r: TranslateResult) => (r.ok ? r.pa : r.event.name);
  return { memory, alloc, tables, cdTable, smmu, name };
}

describe('reserved encodings that behave as another (§5.2, §5.4)', () => {
  it('STE.Config 0b001–0b011 abort silently like 0b000; 0b11x (stage 2) is C_BAD_STE', () => {
    const { smmu, cdTable } = setup();
    for (const config of [1, 2, 3]) {
      smmu.setStreamConfig(1, encodeSte(linuxSte({ config, s1ContextPtr: cdTable })));
      expect(smmu.translate({ sid: 1, iova: 0x1000, access: 'read' })).toMatchObject({
        ok: false,
        recorded: false,
        event: { name: 'ABORT' },
      });
    }
    for (const config of [6, 7]) {
      smmu.setStreamConfig(1, encodeSte(linuxSte({ config, s1ContextPtr: cdTable })));
      const r = smmu.translate({ sid: 1, iova: 0x1000, access: 'read' });
      expect(!r.ok && r.event.name).toBe('C_BAD_STE');
    }
  });

  it('S1Fmt 0b11 behaves as linear; S1DSS 0b11 behaves as terminate', () => {
    const { smmu, cdTable, name } = setup();
    smmu.setStreamConfig(1, encodeSte(linuxSte({ s1ContextPtr: cdTable, s1cdmax: 4, s1fmt: 3, s1dss: 3 })));
    expect(name(smmu.translate({ sid: 1, ssid: 2, iova: 0x1008, access: 'read' }))).toBe(0x4100_0008);
    expect(name(smmu.translate({ sid: 1, iova: 0x1008, access: 'read' }))).toBe('F_STREAM_DISABLED');
  });

  it('CD.IPS 0b111 behaves as 0b110 (52 bits), capped to the OAS', () => {
    const { memory, smmu, tables, cdTable, name } = setup(44);
    tables.map(0x2000, 2 ** 44 - 4096);
    tables.map(0x3000, 2 ** 44);
    writeCd(memory, cdTable, linuxCd(tables, 1, { ips: 7 }));
    smmu.setStreamConfig(1, encodeSte(linuxSte({ s1ContextPtr: cdTable })));
    expect(name(smmu.translate({ sid: 1, iova: 0x2000, access: 'read' }))).toBe(2 ** 44 - 4096);
    expect(name(smmu.translate({ sid: 1, iova: 0x3000, access: 'read' }))).toBe('F_ADDR_SIZE');
  });

  it('CD.ENDI is ILLEGAL only when a TTB is walked; TTB beyond 48 bits with 4K is ILLEGAL', () => {
    const { memory, smmu, tables, cdTable, name } = setup();
    smmu.setStreamConfig(1, encodeSte(linuxSte({ s1ContextPtr: cdTable })));
    writeCd(memory, cdTable, linuxCd(tables, 1, { endi: true }));
    expect(name(smmu.translate({ sid: 1, iova: 0x1000, access: 'read' }))).toBe('C_BAD_CD');
    writeCd(memory, cdTable, linuxCd(tables, 1, { endi: true, epd0: true }));
    smmu.setStreamConfig(1, encodeSte(linuxSte({ s1ContextPtr: cdTable })));
    expect(name(smmu.translate({ sid: 1, iova: 0x1000, access: 'read' }))).toBe('F_TRANSLATION');
    const wide = setup(52);
    writeCd(wide.memory, wide.cdTable, linuxCd(wide.tables, 1, { ips: 6, ttb0: 2 ** 48 }));
    wide.smmu.setStreamConfig(1, encodeSte(linuxSte({ s1ContextPtr: wide.cdTable })));
    expect(wide.name(wide.smmu.translate({ sid: 1, iova: 0x1000, access: 'read' }))).toBe('C_BAD_CD');
    writeCd(wide.memory, wide.cdTable, linuxCd(wide.tables, 1, { ips: 6, tg0: 1, t0sz: 22, ttb0: 2 ** 48 }));
    wide.smmu.setStreamConfig(1, encodeSte(linuxSte({ s1ContextPtr: wide.cdTable })));
    // With 64K pages a 52-bit TTB0 is legal: the walk then aborts on the unbacked table.
    expect(wide.name(wide.smmu.translate({ sid: 1, iova: 0x1000, access: 'read' }))).toBe('F_WALK_EABT');
  });

  it('STE.S1STALLD = 1 is ILLEGAL on an SMMU that cannot stall (§5.5)', () => {
    const { smmu, cdTable, name } = setup();
    smmu.setStreamConfig(1, encodeSte(linuxSte({ s1ContextPtr: cdTable, s1stalld: true })));
    expect(name(smmu.translate({ sid: 1, iova: 0x1000, access: 'read' }))).toBe('C_BAD_STE');
  });
});

describe('structure pointers (§3.4.3, §5.2, §5.3)', () => {
  it('S1ContextPtr bits below a linear table’s size are treated as zero', () => {
    const { smmu, cdTable, name } = setup();
    smmu.setStreamConfig(1, encodeSte(linuxSte({ s1ContextPtr: cdTable + 0x80, s1cdmax: 4 })));
    expect(name(smmu.translate({ sid: 1, ssid: 2, iova: 0x1008, access: 'read' }))).toBe(0x4100_0008);
  });

  it('an L1CD.L2Ptr beyond the OAS is C_BAD_SUBSTREAMID; a CD pointer beyond it is C_BAD_STE', () => {
    const { memory, alloc, smmu, name } = setup(40);
    const l1 = alloc.alloc(64 * 8, 64 * 8);
    memory.write(l1, encodeL1CdDesc({ valid: true, l2ptr: 2 ** 40 }));
    smmu.setStreamConfig(1, encodeSte(linuxSte({ s1ContextPtr: l1, s1cdmax: 12, s1fmt: 1 })));
    const r = smmu.translate({ sid: 1, ssid: 3, iova: 0x1000, access: 'read' });
    expect(name(r)).toBe('C_BAD_SUBSTREAMID');
    smmu.setStreamConfig(1, encodeSte(linuxSte({ s1ContextPtr: 2 ** 40 })));
    expect(name(smmu.translate({ sid: 1, iova: 0x1000, access: 'read' }))).toBe('C_BAD_STE');
  });
});

describe('event record fields (§7.3)', () => {
  it('C_BAD_SUBSTREAMID has no SSV; F_STREAM_DISABLED carries no SubstreamID; C_BAD_CD has both', () => {
    const { smmu, cdTable } = setup();
    smmu.setStreamConfig(9, encodeSte(linuxSte({ s1ContextPtr: cdTable, s1cdmax: 4 })));
    expect(smmu.translate({ sid: 9, ssid: 20, iova: 0x1000, access: 'read' })).toMatchObject({
      event: { name: 'C_BAD_SUBSTREAMID', sid: 9, ssid: 20, ssv: false },
    });
    expect(smmu.translate({ sid: 9, ssid: 0, iova: 0x1000, access: 'read' })).toMatchObject({
      event: { name: 'F_STREAM_DISABLED', sid: 9, ssid: 0, ssv: false },
    });
    expect(smmu.translate({ sid: 9, ssid: 5, iova: 0x1000, access: 'read' })).toMatchObject({
      event: { name: 'C_BAD_CD', sid: 9, ssid: 5, ssv: true },
    });
  });

  it('translation faults carry InputAddr, RnW, InD, PnU and CLASS=IN', () => {
    const { smmu, cdTable } = setup();
    smmu.setStreamConfig(9, encodeSte(linuxSte({ s1ContextPtr: cdTable, s1cdmax: 4 })));
    expect(smmu.translate({ sid: 9, ssid: 2, iova: 0x5000, access: 'exec', privileged: true })).toMatchObject(
      {
        event: {
          name: 'F_TRANSLATION',
          address: 0x5000,
          read: true,
          instruction: true,
          privileged: true,
          eventClass: 2,
          ssv: true,
          ssid: 2,
        },
      },
    );
  });
});

describe('STE attribute overrides (§5.2 PRIVCFG, INSTCFG)', () => {
  it('PRIVCFG forces the privilege, INSTCFG the instruction/data nature of reads', () => {
    const { smmu, tables, cdTable, name } = setup();
    // An EL1-only, execute-never page: unprivileged accesses and instruction reads fault.
    tables.map(0x1000, 0x4100_0000, 3, Leaf.AF | Leaf.NG | Leaf.SH_IS | Leaf.UXN | Leaf.PXN);
    const ste = (privcfg: number, instcfg: number) =>
      encodeSte(
        linuxSte({ s1ContextPtr: cdTable, dword1Other: (BigInt(privcfg) << 48n) | (BigInt(instcfg) << 50n) }),
      );
    const run = (access: 'read' | 'write' | 'exec', privileged = false) =>
      name(smmu.translate({ sid: 1, iova: 0x1000, access, privileged }));
    smmu.setStreamConfig(1, ste(0, 0));
    expect(run('read')).toBe('F_PERMISSION');
    expect(run('read', true)).toBe(0x4100_0000);
    smmu.setStreamConfig(1, ste(3, 0)); // privileged
    expect(run('write')).toBe(0x4100_0000);
    smmu.setStreamConfig(1, ste(2, 0)); // unprivileged
    expect(run('read', true)).toBe('F_PERMISSION');
    smmu.setStreamConfig(1, ste(1, 0)); // reserved, behaves as "use incoming"
    expect(run('read', true)).toBe(0x4100_0000);
    smmu.setStreamConfig(1, ste(3, 3)); // privileged instruction reads
    const r = smmu.translate({ sid: 1, iova: 0x1000, access: 'read' });
    expect(r).toMatchObject({
      ok: false,
      event: { name: 'F_PERMISSION', instruction: true, privileged: true },
    });
    expect(run('write')).toBe(0x4100_0000); // writes stay data
    smmu.setStreamConfig(1, ste(3, 2)); // instruction fetches become data reads
    expect(run('exec')).toBe(0x4100_0000);
  });
});
