import { describe, expect, it } from 'vitest';
import { type CmdqCommand, encodeCommand } from '../codec/command.js';
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

const range = { num: 0, scale: 0, tg: 0, ttl: 0 };

/** Two streams (SIDs 1 and 2) in a linear stream table; SID 1 has two substreams (ASIDs 1 and 2). */
function setup(options: { iotlbEntries?: number } = {}) {
  const memory = createRam();
  const alloc = new BumpAllocator(memory, 0x4000_0000);
  const strtab = alloc.alloc(64 * 4, 256);
  const tablesA = new S1Tables(memory, alloc);
  const tablesB = new S1Tables(memory, alloc);
  const cds = alloc.alloc(64 * 4, 256);
  writeCd(memory, cds, linuxCd(tablesA, 1));
  writeCd(memory, cds + 64, linuxCd(tablesB, 2));
  writeSte(memory, strtab + 64, linuxSte({ s1ContextPtr: cds, s1cdmax: 2, s1dss: 2 }));
  writeSte(memory, strtab + 128, linuxSte({ s1ContextPtr: cds + 64 }));
  const smmu = new Smmuv3({
    memory,
    features: options.iotlbEntries === undefined ? {} : { iotlbEntries: options.iotlbEntries },
  });
  smmu.setStreamTable({ base: strtab, log2Size: 2, format: 'linear' });
  const pa = (sid: number, iova: number, ssid?: number) => {
    const r = smmu.translate({ sid, ssid, iova, access: 'read' });
    return r.ok ? r.pa : r.event.name;
  };
  const cmd = (c: CmdqCommand) => expect(smmu.command(encodeCommand(c))).toEqual({ ok: true });
  return { memory, alloc, strtab, cds, tablesA, tablesB, smmu, pa, cmd };
}

describe('IOTLB: stale until invalidated, per command', () => {
  it('a changed PTE is invisible until TLBI_NH_VA for its ASID and address', () => {
    const { tablesA, pa, cmd } = setup();
    tablesA.map(0x1000, 0x4100_0000);
    tablesA.map(0x2000, 0x4101_0000);
    expect(pa(1, 0x1008)).toBe(0x4100_0008);
    expect(pa(1, 0x2008)).toBe(0x4101_0008);
    tablesA.map(0x1000, 0x4200_0000);
    tablesA.map(0x2000, 0x4201_0000);
    expect(pa(1, 0x1008)).toBe(0x4100_0008);
    cmd({ op: 'TLBI_NH_VA', vmid: 0, asid: 2, address: 0x1000n, leaf: true, ...range });
    expect(pa(1, 0x1008)).toBe(0x4100_0008); // other ASID
    cmd({ op: 'TLBI_NH_VA', vmid: 0, asid: 1, address: 0x3000n, leaf: true, ...range });
    expect(pa(1, 0x1008)).toBe(0x4100_0008); // other page
    cmd({ op: 'TLBI_NH_VA', vmid: 0, asid: 1, address: 0x1000n, leaf: true, ...range });
    expect(pa(1, 0x1008)).toBe(0x4200_0008);
    expect(pa(1, 0x2008)).toBe(0x4101_0008); // still stale
    cmd({ op: 'TLBI_NH_VAA', vmid: 0, address: 0x2000n, leaf: true, ...range });
    expect(pa(1, 0x2008)).toBe(0x4201_0008);
  });

  it('an unmapped PTE keeps translating until invalidated (no negative caching)', () => {
    const { tablesA, memory, pa, cmd } = setup();
    const at = tablesA.map(0x1000, 0x4100_0000);
    expect(pa(1, 0x1000)).toBe(0x4100_0000);
    memory.writeU64(at, 0n);
    expect(pa(1, 0x1000)).toBe(0x4100_0000);
    cmd({ op: 'TLBI_NH_ASID', vmid: 0, asid: 1 });
    expect(pa(1, 0x1000)).toBe('F_TRANSLATION');
    tablesA.map(0x1000, 0x4300_0000);
    expect(pa(1, 0x1000)).toBe(0x4300_0000); // faults are not cached
  });

  it('range TLBI (TG, NUM, SCALE) covers exactly (NUM+1)·2^SCALE pages', () => {
    const { tablesA, pa, cmd } = setup();
    for (let i = 0; i < 40; i++) tablesA.map(0x10_0000 + i * 4096, 0x4100_0000 + i * 4096);
    for (let i = 0; i < 40; i++) pa(1, 0x10_0000 + i * 4096);
    for (let i = 0; i < 40; i++) tablesA.map(0x10_0000 + i * 4096, 0x4200_0000 + i * 4096);
    // 3 × 2^3 = 24 pages from page 4.
    cmd({
      op: 'TLBI_NH_VA',
      vmid: 0,
      asid: 1,
      address: 0x10_4000n,
      leaf: true,
      num: 2,
      scale: 3,
      tg: 1,
      ttl: 3,
    });
    for (let i = 0; i < 40; i++) {
      const fresh = i >= 4 && i < 28;
      expect(pa(1, 0x10_0000 + i * 4096)).toBe((fresh ? 0x4200_0000 : 0x4100_0000) + i * 4096);
    }
  });

  it('TLBI_NH_VA(A) with a 16K TG and TTL 0b01 is CERROR_ILL without DS (§4.4.1.1), invalidating nothing', () => {
    const { tablesA, pa, smmu } = setup();
    tablesA.map(0x10_0000, 0x4100_0000);
    expect(pa(1, 0x10_0000)).toBe(0x4100_0000);
    tablesA.map(0x10_0000, 0x4200_0000);
    const rangeFields = { address: 0x10_0000n, leaf: true, num: 0, scale: 0, tg: 2, ttl: 1 };
    for (const bad of [
      { op: 'TLBI_NH_VA', vmid: 0, asid: 1, ...rangeFields },
      { op: 'TLBI_NH_VAA', vmid: 0, ...rangeFields },
    ] as const) {
      expect(smmu.command(encodeCommand(bad))).toMatchObject({ ok: false, error: 'CERROR_ILL' });
      expect(pa(1, 0x10_0000)).toBe(0x4100_0000);
    }
    // The same command with a 4K TG and a level-3 hint is legal and drops the 4K page.
    expect(
      smmu.command(encodeCommand({ op: 'TLBI_NH_VAA', vmid: 0, ...rangeFields, tg: 1, ttl: 3 })),
    ).toEqual({ ok: true });
    expect(pa(1, 0x10_0000)).toBe(0x4200_0000);
  });

  it('a block is cached as a whole mapping: one TLBI by any address inside drops every piece', () => {
    const { tablesA, pa, cmd } = setup();
    tablesA.map(0x20_0000, 0x4020_0000, 2);
    expect(pa(1, 0x20_0010)).toBe(0x4020_0010);
    expect(pa(1, 0x3f_f010)).toBe(0x403f_f010);
    tablesA.map(0x20_0000, 0x4060_0000, 2);
    expect(pa(1, 0x20_0010)).toBe(0x4020_0010);
    cmd({ op: 'TLBI_NH_VA', vmid: 0, asid: 1, address: 0x30_0000n, leaf: true, ...range });
    expect(pa(1, 0x20_0010)).toBe(0x4060_0010);
    expect(pa(1, 0x3f_f010)).toBe(0x407f_f010);
  });

  it('TLBI_NH_ALL drops everything; TLBI_NH_ASID keeps other ASIDs', () => {
    const { tablesA, tablesB, pa, cmd, smmu } = setup();
    tablesA.map(0x1000, 0x4100_0000);
    tablesB.map(0x1000, 0x4110_0000);
    expect(pa(1, 0x1000)).toBe(0x4100_0000);
    expect(pa(2, 0x1000)).toBe(0x4110_0000);
    expect(smmu.iotlbEntries).toBe(2);
    tablesA.map(0x1000, 0x4200_0000);
    tablesB.map(0x1000, 0x4210_0000);
    cmd({ op: 'TLBI_NH_ASID', vmid: 0, asid: 2 });
    expect(pa(1, 0x1000)).toBe(0x4100_0000);
    expect(pa(2, 0x1000)).toBe(0x4210_0000);
    cmd({ op: 'TLBI_NH_ALL', vmid: 0 });
    expect(smmu.iotlbEntries).toBe(0);
    expect(pa(1, 0x1000)).toBe(0x4200_0000);
  });

  it('global entries (nG = 0) survive TLBI_NH_ASID but not TLBI_NH_VA or TLBI_NH_ALL', () => {
    const { tablesA, pa, cmd } = setup();
    const global = 0x743n; // AF, SH=IS, AP[1], page — no nG
    tablesA.writeRaw(0x1000, 3, 0x4100_0000n | global);
    tablesA.writeRaw(0x2000, 3, 0x4101_0000n | global);
    pa(1, 0x1000);
    pa(1, 0x2000);
    tablesA.writeRaw(0x1000, 3, 0x4200_0000n | global);
    tablesA.writeRaw(0x2000, 3, 0x4201_0000n | global);
    cmd({ op: 'TLBI_NH_ASID', vmid: 0, asid: 1 });
    expect(pa(1, 0x1000)).toBe(0x4100_0000);
    cmd({ op: 'TLBI_NH_VA', vmid: 0, asid: 9, address: 0x1000n, leaf: true, ...range });
    expect(pa(1, 0x1000)).toBe(0x4200_0000); // a VA invalidation for any ASID reaches global entries
    expect(pa(1, 0x2000)).toBe(0x4101_0000);
    cmd({ op: 'TLBI_NH_ALL', vmid: 0 });
    expect(pa(1, 0x2000)).toBe(0x4201_0000);
  });

  it('entries are keyed by ASID, not by stream: two streams sharing an ASID share them', () => {
    const { tablesA, tablesB, memory, cds, pa, cmd } = setup();
    writeCd(memory, cds + 64, linuxCd(tablesB, 1)); // SID 2 now also uses ASID 1
    cmd({ op: 'CFGI_STE', sid: 2, leaf: true });
    tablesA.map(0x1000, 0x4100_0000);
    tablesB.map(0x1000, 0x4110_0000);
    expect(pa(1, 0x1000)).toBe(0x4100_0000);
    expect(pa(2, 0x1000)).toBe(0x4100_0000); // an ASID conflict, as on hardware
  });

  it('with the IOTLB disabled every translation walks', () => {
    const { tablesA, smmu, pa } = setup({ iotlbEntries: 0 });
    tablesA.map(0x1000, 0x4100_0000);
    pa(1, 0x1000);
    tablesA.map(0x1000, 0x4200_0000);
    expect(pa(1, 0x1000)).toBe(0x4200_0000);
    expect(smmu.stats).toMatchObject({ walks: 2, iotlbHits: 0, iotlbMisses: 0 });
  });

  it('stats count walks, IOTLB and CD cache hits and misses', () => {
    const { tablesA, smmu, pa } = setup();
    tablesA.map(0x1000, 0x4100_0000);
    tablesA.map(0x2000, 0x4100_1000);
    pa(1, 0x1000);
    pa(1, 0x1004);
    pa(1, 0x2000);
    expect(smmu.stats).toMatchObject({
      translations: 3,
      walks: 2,
      iotlbHits: 1,
      iotlbMisses: 2,
      cdCacheMisses: 1,
      steCacheMisses: 1,
    });
  });
});

describe('configuration caches', () => {
  it('a changed CD is invisible until CFGI_CD for its SubstreamID (or CFGI_CD_ALL, CFGI_STE)', () => {
    const { memory, cds, tablesA, tablesB, pa, cmd } = setup();
    tablesA.map(0x1000, 0x4100_0000);
    tablesB.map(0x1000, 0x4110_0000);
    const tablesC = new S1Tables(memory, new BumpAllocator(memory, 0x4180_0000));
    tablesC.map(0x1000, 0x4120_0000);
    writeCd(memory, cds + 64 * 3, linuxCd(tablesB, 3));
    expect(pa(1, 0x1000)).toBe(0x4100_0000); // CD 0 via S1DSS
    expect(pa(1, 0x1000, 3)).toBe(0x4110_0000);
    writeCd(memory, cds, linuxCd(tablesC, 7));
    writeCd(memory, cds + 64 * 3, linuxCd(tablesC, 8));
    expect(pa(1, 0x1000)).toBe(0x4100_0000);
    cmd({ op: 'CFGI_CD', sid: 1, ssid: 3, leaf: true });
    expect(pa(1, 0x1000, 3)).toBe(0x4120_0000);
    expect(pa(1, 0x1000)).toBe(0x4100_0000);
    cmd({ op: 'CFGI_CD', sid: 2, ssid: 0, leaf: true });
    expect(pa(1, 0x1000)).toBe(0x4100_0000);
    cmd({ op: 'CFGI_CD_ALL', sid: 1 });
    expect(pa(1, 0x1000)).toBe(0x4120_0000);
    writeCd(memory, cds, { valid: false });
    cmd({ op: 'CFGI_STE', sid: 1, leaf: true });
    expect(pa(1, 0x1000)).toBe('C_BAD_CD');
  });

  it('a changed STE is invisible until CFGI_STE, CFGI_STE_RANGE or CFGI_ALL', () => {
    const { memory, strtab, tablesA, tablesB, cds, pa, cmd, smmu } = setup();
    tablesA.map(0x1000, 0x4100_0000);
    tablesB.map(0x1000, 0x4110_0000);
    expect(pa(2, 0x1000)).toBe(0x4110_0000);
    writeSte(memory, strtab + 128, linuxSte({ s1ContextPtr: cds }));
    expect(pa(2, 0x1000)).toBe(0x4110_0000);
    cmd({ op: 'CFGI_STE', sid: 3, leaf: true });
    expect(pa(2, 0x1000)).toBe(0x4110_0000);
    cmd({ op: 'CFGI_STE_RANGE', sid: 3, range: 0 }); // SIDs 2–3
    expect(pa(2, 0x1000)).toBe(0x4100_0000);
    writeSte(memory, strtab + 128, { valid: false });
    expect(pa(2, 0x1000)).toBe(0x4100_0000);
    cmd({ op: 'CFGI_STE_RANGE', sid: 0, range: 31 });
    expect(pa(2, 0x1000)).toBe('C_BAD_STE');
    // §4.1.6: every command with SSec raises CERROR_ILL for SSec=1 on the Non-secure queue, and
    // invalidates nothing: the cached STE stays in use after its memory is cleared.
    writeSte(memory, strtab + 128, linuxSte({ s1ContextPtr: cds }));
    cmd({ op: 'CFGI_STE', sid: 2, leaf: true });
    expect(pa(2, 0x1000)).toBe(0x4100_0000);
    writeSte(memory, strtab + 128, { valid: false });
    for (const bad of [
      { op: 'CFGI_STE', sid: 2, leaf: true, ssec: true },
      { op: 'CFGI_STE_RANGE', sid: 2, range: 0, ssec: true },
      { op: 'CFGI_STE_RANGE', sid: 0, range: 31, ssec: true },
      { op: 'CFGI_CD', sid: 2, ssid: 0, leaf: true, ssec: true },
      { op: 'CFGI_CD_ALL', sid: 2, ssec: true },
      { op: 'PREFETCH_CFG', sid: 2, ssec: true },
    ] as const) {
      expect(smmu.command(encodeCommand(bad))).toMatchObject({ ok: false, error: 'CERROR_ILL' });
      expect(pa(2, 0x1000)).toBe(0x4100_0000);
    }
    cmd({ op: 'CFGI_STE_RANGE', sid: 2, range: 0 });
    expect(pa(2, 0x1000)).toBe('C_BAD_STE');
    expect(smmu.command(encodeCommand({ op: 'PREFETCH_CFG', sid: 2 }))).toEqual({ ok: true });
    const unknown = new Uint8Array(16);
    unknown[0] = 0x7f;
    expect(smmu.command(unknown)).toMatchObject({ ok: false, error: 'CERROR_ILL' });
    expect(
      smmu.command(encodeCommand({ op: 'CMD_SYNC', cs: 0, msh: 0, msiAttr: 0, msiData: 0, msiAddress: 0 })),
    ).toEqual({ ok: true });
  });
});
