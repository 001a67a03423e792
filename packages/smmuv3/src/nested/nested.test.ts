import {
  createNestedTranslation,
  DmaAccess,
  type NestedFaultReason as FaultReason,
  type NestedAttachResult,
  NestedFaultReason,
  type NestedInvalidation,
  type NestedTable,
  NO_PASID,
} from '@vmmkit/core';
import { beforeEach, describe, expect, it } from 'vitest';
import { encodeL1CdDesc } from '../codec/l1.js';
import {
  BumpAllocator,
  createRam,
  DEFAULT_LEAF_ATTRS,
  Leaf,
  linuxCd,
  S1Tables,
  writeCd,
} from '../testing/host-tables.js';
import { ArmLpaeNestedBackend } from './lpae-backend.js';
import { ARM_LPAE_PAGE_SIZES } from './options.js';
import { ArmSmmuV3PasidBackend } from './pasid-backend.js';
import type { SmmuNestedTable } from './table.js';

function pasidPayload(p: { s1fmt?: number; s1dss?: number; s1cdmax?: number; ptr: number }): Uint8Array {
  const payload = new Uint8Array(68);
  const view = new DataView(payload.buffer);
  view.setUint16(0, 2, true);
  payload[2] = p.s1fmt ?? 0;
  payload[3] = p.s1dss ?? 2;
  view.setUint32(4, p.s1cdmax ?? 0, true);
  view.setBigUint64(8, BigInt(p.ptr), true);
  return payload;
}

/** TCR_EL1 as the DRAFT-B driver sends it: T0SZ, IRGN0, ORGN0, SH0, TG0, EPD1, IPS. */
function lpaePayload(p: {
  asid: number;
  t0sz: number;
  tg0: number;
  ips: number;
  ttbr: number;
  mair?: bigint;
}) {
  const payload = new Uint8Array(68);
  const view = new DataView(payload.buffer);
  view.setUint16(0, 1, true);
  view.setUint16(2, p.asid, true);
  const lo = p.t0sz | (1 << 8) | (1 << 10) | (3 << 12) | (p.tg0 << 14) | (1 << 23);
  view.setUint32(8, lo >>> 0, true);
  view.setUint32(12, p.ips, true);
  view.setBigUint64(16, BigInt(p.ttbr), true);
  view.setBigUint64(24, p.mair ?? 0xf404ff44n, true);
  return payload;
}

function table(result: NestedAttachResult): NestedTable {
  if (!result.ok) throw new Error(`attach failed: ${result.status} ${result.reason}`);
  return result.table;
}

const inv = (over: Partial<NestedInvalidation>): NestedInvalidation => ({
  granularity: 'domain',
  caches: { iotlb: false, devIotlb: false, pasid: false },
  leaf: false,
  virtStart: 0n,
  nrPages: 0n,
  granule: 12,
  ...over,
});

describe('format 2: SMMUv3 PASID table', () => {
  let memory: ReturnType<typeof createRam>;
  let alloc: BumpAllocator;
  let t0: S1Tables;
  let t7: S1Tables;
  let cdTable: number;
  const backend = new ArmSmmuV3PasidBackend();
  const out = createNestedTranslation();
  const run = (t: NestedTable, pasid: number, iova: number, access: DmaAccess = DmaAccess.READ) =>
    t.translate(pasid, iova, access, out) ? out.pa : (out.fault as FaultReason);

  beforeEach(() => {
    memory = createRam();
    alloc = new BumpAllocator(memory, 0x4000_0000);
    cdTable = alloc.alloc(64 * 16, 1024);
    t0 = new S1Tables(memory, alloc);
    t7 = new S1Tables(memory, alloc);
    writeCd(memory, cdTable, linuxCd(t0, 1));
    writeCd(memory, cdTable + 7 * 64, linuxCd(t7, 7));
    t0.map(0x1000, 0x4100_0000);
    t7.map(0x1000, 0x4170_0000, 3, DEFAULT_LEAF_ATTRS | Leaf.AP_RDONLY);
  });

  it('describes itself as QEMU/Linux would offer an SMMUv3 PASID table', () => {
    expect(backend.vendor).toBe('arm');
    expect(backend.describe(0)).toEqual({
      format: 2,
      kind: 'pasid-table',
      asidBits: 16,
      flags: 0,
      outputBits: 48,
      pasidBits: 20,
      pageSizeMask: ARM_LPAE_PAGE_SIZES,
      inputBits: 48,
    });
    expect(ARM_LPAE_PAGE_SIZES & 0x4020_1000n).toBe(0x4020_1000n);
  });

  it('translates per PASID; no PASID follows s1dss; faults map to virtio-iommu reasons with the event', () => {
    const t = table(
      backend.attach({
        memory,
        endpoint: 1,
        payload: pasidPayload({ s1cdmax: 4, ptr: cdTable }),
        pasidBits: 20,
      }),
    );
    expect(run(t, NO_PASID, 0x1234)).toBe(0x4100_0234);
    expect(run(t, 7, 0x1234)).toBe(0x4170_0234);
    expect(run(t, 7, 0x1234, DmaAccess.WRITE)).toBe(NestedFaultReason.PERMISSION);
    expect(out.event).toMatchObject({
      name: 'F_PERMISSION',
      ssid: 7,
      ssv: true,
      address: 0x1234,
      read: false,
    });
    expect(run(t, 7, 0x9000)).toBe(NestedFaultReason.PTE_FETCH);
    expect(run(t, 3, 0x1234)).toBe(NestedFaultReason.DOMAIN); // CD 3 invalid: C_BAD_CD
    expect(out.event).toMatchObject({ name: 'C_BAD_CD' });
    expect(run(t, 16, 0x1234)).toBe(NestedFaultReason.DOMAIN); // beyond s1cdmax: C_BAD_SUBSTREAMID
    expect(run(t, 0, 0x1234)).toBe(NestedFaultReason.DOMAIN); // PASID 0 reserved by s1dss=2
    expect(run(t, 2 ** 20, 0x1234)).toBe(NestedFaultReason.DOMAIN);
    expect(out.event).toMatchObject({ name: 'C_BAD_SUBSTREAMID' });
    t0.writeRaw(0x4000_0000, 2, 0x7000_0003n);
    expect(run(t, NO_PASID, 0x4000_0000)).toBe(NestedFaultReason.WALK_EABT);
    t0.map(0x6000, 0x4100_0000, 3, Leaf.AP_UNPRIV | Leaf.NG);
    expect(run(t, NO_PASID, 0x6000)).toBe(NestedFaultReason.ACCESS);
    t0.map(0x7000, 2 ** 48 - 4096);
    writeCd(memory, cdTable, linuxCd(t0, 1, { ips: 2 }));
    t.invalidate(
      inv({ granularity: 'pasid', pasid: 0, caches: { iotlb: false, devIotlb: false, pasid: true } }),
    );
    expect(run(t, NO_PASID, 0x7000)).toBe(NestedFaultReason.OOR_ADDRESS);

    const bypass = table(
      backend.attach({
        memory,
        endpoint: 2,
        payload: pasidPayload({ s1cdmax: 4, s1dss: 1, ptr: cdTable }),
        pasidBits: 20,
      }),
    );
    expect(run(bypass, NO_PASID, 0x1234)).toBe(0x1234);
    const terminate = table(
      backend.attach({
        memory,
        endpoint: 3,
        payload: pasidPayload({ s1cdmax: 4, s1dss: 0, ptr: cdTable }),
        pasidBits: 20,
      }),
    );
    expect(run(terminate, NO_PASID, 0x1234)).toBe(NestedFaultReason.DOMAIN);
    expect(out.event).toMatchObject({ name: 'F_STREAM_DISABLED' });
  });

  it('a two-level CD table with 64K leaves', () => {
    const l1 = alloc.alloc(8 * 4, 64);
    const leaf = alloc.alloc(64 * 1024, 65536);
    memory.write(l1 + 8, encodeL1CdDesc({ valid: true, l2ptr: leaf }));
    writeCd(memory, leaf + 64 * 5, linuxCd(t7, 9));
    const t = table(
      backend.attach({
        memory,
        endpoint: 1,
        payload: pasidPayload({ s1fmt: 2, s1cdmax: 12, ptr: l1 }),
        pasidBits: 20,
      }),
    );
    expect(run(t, 1024 + 5, 0x1010)).toBe(0x4170_0010);
    expect(run(t, 2048 + 5, 0x1010)).toBe(NestedFaultReason.DOMAIN);
    expect(out.event).toMatchObject({ name: 'C_BAD_SUBSTREAMID' });
  });

  it('invalidation: stale until the matching INVALIDATE', () => {
    const t = table(
      backend.attach({
        memory,
        endpoint: 1,
        payload: pasidPayload({ s1cdmax: 4, ptr: cdTable }),
        pasidBits: 20,
      }),
    );
    expect(run(t, 7, 0x1000)).toBe(0x4170_0000);
    expect(run(t, NO_PASID, 0x1000)).toBe(0x4100_0000);
    t7.map(0x1000, 0x4180_0000);
    t0.map(0x1000, 0x4110_0000);
    const iotlb = { iotlb: true, devIotlb: false, pasid: false };
    t.invalidate(
      inv({ granularity: 'va', caches: iotlb, pasid: 7, archid: 1n, virtStart: 0x1000n, nrPages: 1n }),
    );
    expect(run(t, 7, 0x1000)).toBe(0x4170_0000); // ASID 1 is PASID 0's
    expect(run(t, NO_PASID, 0x1000)).toBe(0x4110_0000);
    t.invalidate(
      inv({ granularity: 'va', caches: iotlb, pasid: 7, archid: 7n, virtStart: 0x2000n, nrPages: 4n }),
    );
    expect(run(t, 7, 0x1000)).toBe(0x4170_0000); // range misses the page
    t0.map(0x1000, 0x4120_0000);
    t.invalidate(
      inv({ granularity: 'va', caches: iotlb, pasid: 7, archid: 7n, virtStart: 0n, nrPages: 2n, leaf: true }),
    );
    expect(run(t, 7, 0x1000)).toBe(0x4180_0000);
    expect(run(t, NO_PASID, 0x1000)).toBe(0x4110_0000);
    t.invalidate(inv({ granularity: 'pasid', caches: iotlb, pasid: 0, archid: 1n }));
    expect(run(t, NO_PASID, 0x1000)).toBe(0x4120_0000);
    // A CD change needs the PASID cache invalidation, then the TLB one for the old ASID.
    const t9 = new S1Tables(memory, alloc);
    t9.map(0x1000, 0x4190_0000);
    writeCd(memory, cdTable + 7 * 64, linuxCd(t9, 9));
    expect(run(t, 7, 0x1000)).toBe(0x4180_0000);
    t.invalidate(
      inv({
        granularity: 'pasid',
        pasid: 7,
        caches: { iotlb: false, devIotlb: false, pasid: true },
        leaf: true,
      }),
    );
    expect(run(t, 7, 0x1000)).toBe(0x4190_0000);
    t7.map(0x1000, 0x41a0_0000);
    t.invalidate(inv({ granularity: 'domain', caches: iotlb }));
    expect(run(t, 7, 0x1000)).toBe(0x4190_0000);
    expect((t as SmmuNestedTable).model?.stats.walks).toBeGreaterThan(0);
  });

  it('attach checks the payload, not the table contents (PROTOCOL.md statuses)', () => {
    const status = (payload: Uint8Array, pasidBits = 20) => {
      const r = backend.attach({ memory, endpoint: 1, payload, pasidBits });
      return r.ok ? 'ok' : r.status;
    };
    expect(status(pasidPayload({ s1cdmax: 4, ptr: cdTable }))).toBe('ok');
    expect(status(pasidPayload({ s1fmt: 3, s1cdmax: 4, ptr: cdTable }))).toBe('inval');
    expect(status(pasidPayload({ s1dss: 3, s1cdmax: 4, ptr: cdTable }))).toBe('inval');
    expect(status(pasidPayload({ s1cdmax: 5, ptr: cdTable }), 4)).toBe('inval');
    expect(status(pasidPayload({ s1cdmax: 21, ptr: cdTable }))).toBe('inval');
    expect(status(pasidPayload({ s1cdmax: 4, ptr: cdTable + 8 }))).toBe('inval');
    expect(status(pasidPayload({ s1cdmax: 4, ptr: cdTable + 64 }))).toBe('inval'); // linear: aligned to its size
    expect(status(pasidPayload({ s1cdmax: 0, ptr: cdTable + 64 }))).toBe('ok');
    expect(status(pasidPayload({ s1cdmax: 4, ptr: 2 ** 52 }))).toBe('inval');
    expect(status(pasidPayload({ s1cdmax: 4, ptr: 0x1000_0000 }))).toBe('fault');
    expect(status(pasidPayload({ s1cdmax: 20, ptr: cdTable }))).toBe('fault'); // 64 MiB table leaves RAM
    const reserved = pasidPayload({ s1cdmax: 4, ptr: cdTable });
    reserved[40] = 1;
    expect(status(reserved)).toBe('inval');
    // Garbage in the table is found at translation time, not at attach.
    const junk = alloc.alloc(64 * 16, 1024);
    memory.fill(junk, 64 * 16, 0xa5);
    expect(status(pasidPayload({ s1cdmax: 4, ptr: junk }))).toBe('ok');
  });

  it('sameTable compares payloads; a released table answers DOMAIN', () => {
    const payload = pasidPayload({ s1cdmax: 4, ptr: cdTable });
    const t = table(backend.attach({ memory, endpoint: 1, payload, pasidBits: 20 }));
    expect(t.sameTable(payload.slice())).toBe(true);
    expect(t.sameTable(pasidPayload({ s1cdmax: 3, ptr: cdTable }))).toBe(false);
    expect(t.explain(7, 0x1000, DmaAccess.READ).at(-1)).toMatchObject({
      label: 'result',
      value: 'pa 0x41700000',
    });
    t.release();
    expect(run(t, 7, 0x1000)).toBe(NestedFaultReason.DOMAIN);
  });
});

describe('format 1: Arm LPAE single table', () => {
  const backend = new ArmLpaeNestedBackend();
  const out = createNestedTranslation();

  it('describes a page-table format without PASIDs', () => {
    expect(backend.describe(3)).toMatchObject({
      format: 1,
      kind: 'page-table',
      pasidBits: 0,
      asidBits: 16,
      outputBits: 48,
    });
  });

  it.each([
    [12, 16],
    [14, 17],
    [16, 22],
  ])('translates through guest tables (granule shift %i, T0SZ %i)', (g, t0sz) => {
    const memory = createRam();
    const alloc = new BumpAllocator(memory, 0x4000_0000);
    const tables = new S1Tables(memory, alloc, g, 64 - t0sz);
    tables.map(0x40_0000, 0x4200_0000);
    const tg0 = g === 12 ? 0 : g === 16 ? 1 : 2;
    const payload = lpaePayload({ asid: 3, t0sz, tg0, ips: 5, ttbr: tables.root });
    const t = table(backend.attach({ memory, endpoint: 1, payload, pasidBits: 0 }));
    expect(t.translate(NO_PASID, 0x40_0010, DmaAccess.WRITE, out)).toBe(true);
    expect(out).toMatchObject({ pa: 0x4200_0010, pageSize: 2 ** g, perm: 7 });
    expect(t.translate(NO_PASID, 0x80_0000, DmaAccess.READ, out)).toBe(false);
    expect(out.fault).toBe(NestedFaultReason.PTE_FETCH);
    // Stale until a VA invalidation for ASID 3.
    tables.map(0x40_0000, 0x4300_0000);
    t.translate(NO_PASID, 0x40_0010, DmaAccess.READ, out);
    expect(out.pa).toBe(0x4200_0010);
    t.invalidate(
      inv({
        granularity: 'va',
        caches: { iotlb: true, devIotlb: false, pasid: false },
        archid: 3n,
        virtStart: 0x40_0000n,
        nrPages: 1n,
        granule: g,
      }),
    );
    t.translate(NO_PASID, 0x40_0010, DmaAccess.READ, out);
    expect(out.pa).toBe(0x4300_0010);
  });

  it('attach statuses', () => {
    const memory = createRam();
    const alloc = new BumpAllocator(memory, 0x4000_0000);
    const tables = new S1Tables(memory, alloc);
    const ok = { asid: 1, t0sz: 16, tg0: 0, ips: 5, ttbr: tables.root };
    const status = (payload: Uint8Array) => {
      const r = backend.attach({ memory, endpoint: 1, payload, pasidBits: 0 });
      return r.ok ? 'ok' : r.status;
    };
    expect(status(lpaePayload(ok))).toBe('ok');
    expect(status(lpaePayload({ ...ok, tg0: 3 }))).toBe('inval');
    expect(status(lpaePayload({ ...ok, t0sz: 12 }))).toBe('inval');
    expect(status(lpaePayload({ ...ok, ips: 7 }))).toBe('inval');
    expect(status(lpaePayload({ ...ok, ttbr: tables.root + 64 }))).toBe('inval');
    expect(status(lpaePayload({ ...ok, ttbr: 0x2000_0000 }))).toBe('fault');
    const reserved = lpaePayload(ok);
    reserved[5] = 1;
    expect(status(reserved)).toBe('inval');
    const httu = lpaePayload(ok);
    httu[12] = 0x80 | 5; // TCR bit 39: HA (beside IPS = 5)
    expect(status(httu)).toBe('inval');
  });
});
