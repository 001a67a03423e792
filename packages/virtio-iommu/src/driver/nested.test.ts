/**
 * Nested attach over a scripted device and toy table formats: what the driver sends (ATTACH_TABLE,
 * INVALIDATE) for what the seed's library and the io-pgtable callbacks ask.
 */
import {
  createContainer,
  definePlugin,
  type IoPgtableCfg,
  type IoPgtableFormat,
  type IoPgtableOps,
  type IotlbGather,
  type PasidTableVendor,
} from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import {
  InvalidateCache,
  InvalidateFlag,
  InvalidateGranularity,
  RequestType,
  Status,
} from '../protocol/constants.js';
import { encodeProperties } from '../protocol/properties.js';
import { type AttachTableRequest, decodeRequest, type InvalidateRequest } from '../protocol/requests.js';
import { VirtioIommuDriver } from './driver.js';
import { createScriptedIommu, MMIO_BASE } from './testing/scripted-iommu.js';

const TOY_PASID_FORMAT = 2;
const TOY_PAGE_FORMAT = 1;

/** A PASID table of 8-byte entries; `write` syncs the entry it changed, as vendors must. */
const toyPasidVendor: PasidTableVendor<number> = {
  vendor: 'toy',
  format: 'toy-pasid',
  ops: {
    alloc(cfg) {
      cfg.base = cfg.iommuDev.allocator.alloc(0x1000);
    },
    free(cfg) {
      cfg.iommuDev.allocator.free(cfg.base);
    },
    prepare: (_cfg, pgtableCfg, asid) => asid * 0x1_0000 + (pgtableCfg.vendor as { toy?: number }).toy!,
    write(cfg, ssid, ctx) {
      cfg.iommuDev.memory.writeU32(cfg.base + ssid * 8, ctx ?? 0);
      cfg.sync!(null, ssid, true);
    },
  },
  attachDescriptor(cfg) {
    const payload = new Uint8Array(68);
    const view = new DataView(payload.buffer);
    view.setUint16(0, TOY_PASID_FORMAT, true);
    view.setUint32(4, Number(cfg.iommuDev.features?.ssidBits), true);
    view.setBigUint64(8, BigInt(cfg.base), true);
    return { format: TOY_PASID_FORMAT, payload };
  },
};

/** A page table that only records mappings and calls the TLB hooks as a real one does. */
class ToyPgtable implements IoPgtableOps {
  readonly pages = new Map<number, number>();
  constructor(readonly cfg: IoPgtableCfg) {}
  map(iova: number, pa: number, size: number): void {
    for (let off = 0; off < size; off += 0x1000) this.pages.set(iova + off, pa + off);
  }
  unmap(iova: number, size: number, gather?: IotlbGather): number {
    let done = 0;
    for (let off = 0; off < size; off += 0x1000) {
      if (!this.pages.delete(iova + off)) break;
      this.cfg.tlb.addPage(gather!, iova + off, 0x1000);
      done += 0x1000;
    }
    // A freed table level: its walk caches must go.
    if (size >= 0x20_0000) this.cfg.tlb.flushWalk(iova, size, 0x1000);
    return done;
  }
  iovaToPhys(iova: number): number | null {
    return this.pages.get(iova) ?? null;
  }
  free(): void {
    this.pages.clear();
  }
}

let tables = 0;
const toyPgtableFormat: IoPgtableFormat = {
  name: 'toy-pgtable',
  vendor: 'toy',
  alloc(cfg) {
    (cfg.vendor as { toy?: number }).toy = ++tables;
    return new ToyPgtable(cfg);
  },
  attachDescriptor(_cfg, asid) {
    const payload = new Uint8Array(68);
    new DataView(payload.buffer).setUint16(0, TOY_PAGE_FORMAT, true);
    new DataView(payload.buffer).setUint16(2, asid, true);
    return { format: TOY_PAGE_FORMAT, payload };
  },
};

const toyPlugin = definePlugin('toy', (r) => {
  r.pasidTableVendor(toyPasidVendor);
  r.ioPgtableFormat(toyPgtableFormat);
});

function setup() {
  const s = createScriptedIommu({ probeSize: 128 });
  s.device.handler = (request, writable) => {
    if (request[0] !== RequestType.PROBE) return { status: Status.OK };
    return {
      written: encodeProperties(
        [
          { type: 'output-size', bits: 48 },
          { type: 'pasid-size', bits: 8 },
          { type: 'pasid-table-fmt', format: TOY_PASID_FORMAT, asidBits: 16, flags: 0 },
          { type: 'page-table-fmt', format: TOY_PAGE_FORMAT, asidBits: 8, flags: 0 },
          { type: 'input-range', start: 0n, end: (1n << 48n) - 1n },
        ],
        writable - 4,
      ),
    };
  };
  const driver = new VirtioIommuDriver({
    mmio: s.bus,
    base: MMIO_BASE,
    memory: s.memory,
    allocator: s.allocator,
    requestQueueSize: 64,
    eventQueueSize: 4,
    container: createContainer([toyPlugin]),
  });
  const sent = () => s.device.requests.map((r) => decodeRequest(r));
  const requestKicks = () => s.device.notifications.filter((q) => q === 0).length;
  return { ...s, driver, sent, requestKicks };
}

function invalidate(fields: Partial<InvalidateRequest>): InvalidateRequest {
  return {
    type: 'invalidate',
    granularity: 0,
    caches: 0,
    flags: 0,
    domain: 0,
    pasid: 0,
    archid: 0n,
    virtStart: 0n,
    nrPages: 0n,
    granule: 0,
    ...fields,
  };
}

describe('nested PASID table', () => {
  it('fills the table before ATTACH_TABLE (nothing to invalidate yet), then syncs later entries with INVALIDATE', () => {
    const { driver, sent, memory } = setup();
    const nested = driver.attachPasidTable(5, {
      pasidTableFormat: 'toy-pasid',
      pgtableFormat: 'toy-pgtable',
      pasids: [1, 2],
    });
    const requests = sent().filter((r) => r?.type !== 'probe');
    const attach = requests[0] as AttachTableRequest;
    expect(attach).toMatchObject({
      type: 'attach-table',
      domain: nested.domain,
      endpoint: 5,
      flags: 0,
      format: 2,
    });
    // Bytes 16..83 are the vendor's descriptor verbatim: s1cdmax = the endpoint's PASID bits.
    expect(new DataView(attach.payload.buffer).getUint32(4, true)).toBe(8);
    expect(new DataView(attach.payload.buffer).getBigUint64(8, true)).toBe(BigInt(nested.table.cfg.base));
    // The device never saw the table before ATTACH_TABLE: its entries were written unsynced.
    expect(requests).toHaveLength(1);
    nested.addPasid(3);
    const after = sent()
      .filter((r) => r?.type !== 'probe')
      .slice(1);
    expect(after).toEqual([
      invalidate({
        granularity: InvalidateGranularity.PASID,
        caches: InvalidateCache.PASID,
        flags: InvalidateFlag.PASID | InvalidateFlag.LEAF,
        domain: nested.domain,
        pasid: 3,
      }),
    ]);
    // Each PASID got its own table and ASID, and its entry is in the table.
    expect(nested.pasids).toEqual([1, 2, 3]);
    expect(memory.readU32(nested.table.cfg.base + 8) >>> 16).not.toBe(
      memory.readU32(nested.table.cfg.base + 16) >>> 16,
    );
    expect(driver.domainOf(5)).toBe(nested.domain);
  });

  it('sends the invalidations of an unmap in one notification, leaf pages merged into one range', () => {
    const { driver, sent, requestKicks } = setup();
    const nested = driver.attachPasidTable(5, {
      pasidTableFormat: 'toy',
      pgtableFormat: 'toy-pgtable',
      pasids: [3],
    });
    nested.map(3, 0x20_0000, 0x4000_0000, 0x40_0000, 3);
    const before = sent().length;
    const kicks = requestKicks();
    expect(nested.unmap(3, 0x20_0000, 0x20_0000)).toBe(0x20_0000);
    expect(requestKicks() - kicks).toBe(1);
    const asid = Number((sent().at(-1) as InvalidateRequest).archid);
    expect(sent().slice(before)).toEqual([
      invalidate({
        granularity: InvalidateGranularity.VA,
        caches: InvalidateCache.IOTLB,
        flags: InvalidateFlag.PASID | InvalidateFlag.ARCHID,
        domain: nested.domain,
        pasid: 3,
        archid: BigInt(asid),
        virtStart: 0x20_0000n,
        nrPages: 0x200n,
        granule: 12,
      }),
      invalidate({
        granularity: InvalidateGranularity.VA,
        caches: InvalidateCache.IOTLB,
        flags: InvalidateFlag.PASID | InvalidateFlag.ARCHID | InvalidateFlag.LEAF,
        domain: nested.domain,
        pasid: 3,
        archid: BigInt(asid),
        virtStart: 0x20_0000n,
        nrPages: 0x200n,
        granule: 12,
      }),
    ]);
    expect(asid).toBeGreaterThan(0);
  });

  it('splits the gather when unmapped pages are not contiguous', () => {
    const { driver, sent } = setup();
    const nested = driver.attachPasidTable(5, {
      pasidTableFormat: 'toy',
      pgtableFormat: 'toy-pgtable',
      pasids: [3],
    });
    const table = nested.pgtable(3);
    table.map(0x1000, 0x4000_1000, 0x1000, 3);
    table.map(0x5000, 0x4000_5000, 0x2000, 3);
    const gather = { start: Number.POSITIVE_INFINITY, end: 0, pgsize: 0 };
    const before = sent().length;
    table.unmap(0x1000, 0x1000, gather);
    table.unmap(0x5000, 0x2000, gather);
    nested.flush();
    // The first page went out when the disjoint range arrived; the second range stays in the gather.
    expect(
      sent()
        .slice(before)
        .map((r) => [(r as InvalidateRequest).virtStart, (r as InvalidateRequest).nrPages]),
    ).toEqual([[0x1000n, 1n]]);
    expect(gather).toEqual({ start: 0x5000, end: 0x7000, pgsize: 0x1000 });
  });

  it('invalidates on request after direct table edits: a leaf range, or the whole PASID', () => {
    const { driver, sent } = setup();
    const nested = driver.attachPasidTable(5, {
      pasidTableFormat: 'toy',
      pgtableFormat: 'toy-pgtable',
      pasids: [3],
    });
    const before = sent().length;
    nested.invalidate(3, 0x5000, 0x1800);
    nested.invalidate(3);
    expect(
      sent()
        .slice(before)
        .map((r) => {
          const i = r as InvalidateRequest;
          return [i.granularity, i.caches, i.flags, i.pasid, i.virtStart, i.nrPages, i.granule];
        }),
    ).toEqual([
      [
        InvalidateGranularity.VA,
        InvalidateCache.IOTLB,
        InvalidateFlag.PASID | InvalidateFlag.ARCHID | InvalidateFlag.LEAF,
        3,
        0x5000n,
        2n,
        12,
      ],
      [
        InvalidateGranularity.PASID,
        InvalidateCache.IOTLB,
        InvalidateFlag.PASID | InvalidateFlag.ARCHID,
        3,
        0n,
        0n,
        0,
      ],
    ]);
  });

  it('removes a PASID: entry cleared and synced, its IOTLB flushed', () => {
    const { driver, sent } = setup();
    const nested = driver.attachPasidTable(5, {
      pasidTableFormat: 'toy',
      pgtableFormat: 'toy-pgtable',
      pasids: [1],
    });
    const before = sent().length;
    nested.removePasid(1);
    expect(
      sent()
        .slice(before)
        .map((r) => [(r as InvalidateRequest).granularity, (r as InvalidateRequest).caches]),
    ).toEqual([
      [InvalidateGranularity.PASID, InvalidateCache.PASID],
      [InvalidateGranularity.PASID, InvalidateCache.IOTLB],
    ]);
    expect(() => nested.map(1, 0, 0, 0x1000, 1)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('refuses a PASID beyond the endpoint PASID bits, and a format the endpoint does not offer', () => {
    const { driver } = setup();
    const nested = driver.attachPasidTable(5, { pasidTableFormat: 'toy', pgtableFormat: 'toy-pgtable' });
    expect(() => nested.addPasid(256)).toThrow(expect.objectContaining({ code: 'ERANGE' }));
    expect(() =>
      driver.attachPasidTable(6, { pasidTableFormat: 'toy', pgtableFormat: 'toy-pgtable', tableFormat: 7 }),
    ).toThrow(/does not offer pasid-table format 7/);
  });

  it('takes a new entry back out of the table when its sync is refused', () => {
    const { driver, device, memory } = setup();
    const nested = driver.attachPasidTable(5, { pasidTableFormat: 'toy', pgtableFormat: 'toy-pgtable' });
    device.handler = (request) => ({
      status: request[0] === RequestType.INVALIDATE ? Status.DEVERR : Status.OK,
    });
    expect(() => nested.addPasid(4)).toThrow(expect.objectContaining({ status: Status.DEVERR }));
    expect(memory.readU32(nested.table.cfg.base + 4 * 8)).toBe(0);
    expect(nested.pasids).toEqual([]);
    // The clearing write's own sync was refused too: kept for the caller, not thrown over the first error.
    expect(nested.cleanupFailures).toHaveLength(1);
  });

  it('frees everything when the device refuses ATTACH_TABLE', () => {
    const { driver, device, allocator } = setup();
    driver.probeEndpoint(5);
    const free = allocator.freeBytes;
    device.handler = (request) => ({
      status: request[0] === RequestType.ATTACH_TABLE ? Status.UNSUPP : Status.OK,
    });
    expect(() =>
      driver.attachPasidTable(5, { pasidTableFormat: 'toy', pgtableFormat: 'toy-pgtable' }),
    ).toThrow(expect.objectContaining({ code: 'ENOSYS', status: Status.UNSUPP }));
    expect(allocator.freeBytes).toBe(free);
    expect(driver.domainOf(5)).toBeUndefined();
  });
});

describe('nested single page table', () => {
  it('attaches with the format descriptor and invalidates by domain and ASID without PASID', () => {
    const { driver, sent } = setup();
    const nested = driver.attachPageTable(6, { pgtableFormat: 'toy-pgtable' });
    const attach = sent().at(-1) as AttachTableRequest;
    expect(attach).toMatchObject({ type: 'attach-table', endpoint: 6, format: TOY_PAGE_FORMAT });
    expect(new DataView(attach.payload.buffer).getUint16(2, true)).toBe(1);
    nested.map(0x8000, 0x4000_8000, 0x1000, 1);
    nested.unmap(0x8000, 0x1000);
    expect(sent().at(-1)).toEqual(
      invalidate({
        granularity: InvalidateGranularity.VA,
        caches: InvalidateCache.IOTLB,
        flags: InvalidateFlag.ARCHID | InvalidateFlag.LEAF,
        domain: nested.domain,
        archid: 1n,
        virtStart: 0x8000n,
        nrPages: 1n,
        granule: 12,
      }),
    );
    nested.pgtable.cfg.tlb.flushAll();
    nested.flush();
    expect(sent().at(-1)).toMatchObject({
      granularity: InvalidateGranularity.DOMAIN,
      flags: InvalidateFlag.ARCHID,
    });
  });
});
