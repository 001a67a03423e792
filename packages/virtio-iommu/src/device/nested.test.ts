import { describe, expect, it } from 'vitest';
import {
  FaultFlag,
  FaultReason,
  InvalidateCache,
  InvalidateFlag,
  InvalidateGranularity,
  MapFlag,
  Status,
  TableFormat,
} from '../protocol/constants.js';
import { parseProperties } from '../protocol/properties.js';
import {
  encodeAttach,
  encodeAttachTable,
  encodeDetach,
  encodeInvalidate,
  encodeMap,
  encodeProbe,
  encodeUnmap,
} from '../protocol/requests.js';
import {
  createFakeNestedBackend,
  createVirtioIommuHarness,
  fakeNestedPlugin,
  requestStatus,
} from '../testing/index.js';

/** The nested extension: PROBE properties, ATTACH_TABLE, INVALIDATE, translation (PROTOCOL.md). */

const IOVA = 0x40_0000;

function setup() {
  const virt = createFakeNestedBackend({ format: TableFormat.VIRT });
  const pasid = createFakeNestedBackend({
    format: TableFormat.ARM_SMMU_V3,
    kind: 'pasid-table',
    pasidBits: 4,
  });
  const h = createVirtioIommuHarness({
    endpoints: [{ id: 1 }, { id: 2, tableFormats: [TableFormat.VIRT] }, { id: 3 }],
    plugins: [fakeNestedPlugin(virt, pasid)],
    bypass: false,
  });
  const { memory, allocator } = h.guest;
  // A virt table mapping IOVA 0x40_0000 (L0 0, L1 0, L2 2, L3 0) to a read-only page.
  const [l0, l1, l2, l3, page] = [0, 1, 2, 3, 4].map(() => allocator.alloc(0x1000)) as [
    number,
    number,
    number,
    number,
    number,
  ];
  memory.writeU64(l0, BigInt(l1) | 3n);
  memory.writeU64(l1, BigInt(l2) | 3n);
  memory.writeU64(l2 + 2 * 8, BigInt(l3) | 3n);
  memory.writeU64(l3, BigInt(page) | 1n | 4n);
  // A PASID table whose entry 5 is that same root.
  const pasidTable = allocator.alloc(0x1000);
  memory.writeU64(pasidTable + 5 * 8, BigInt(l0));
  const payload = (root: number) => {
    const p = new Uint8Array(66);
    new DataView(p.buffer).setBigUint64(6, BigInt(root), true);
    return p;
  };
  const attachTable = (domain: number, endpoint: number, format: number, root: number, flags = 0) =>
    encodeAttachTable({ domain, endpoint, format, flags, payload: payload(root) });
  return { h, virt, pasid, l0, page, pasidTable, attachTable };
}

describe('nested PROBE', () => {
  it('reports a property group per format offered to the endpoint', async () => {
    const { h } = setup();
    const { written } = await h.submit(encodeProbe({ endpoint: 1 }), 516);
    const input = { type: 'input-range', start: 0n, end: (1n << 48n) - 1n };
    expect(parseProperties(written.subarray(0, 512))).toEqual([
      { type: 'page-size-mask', mask: 0x4020_1000n },
      input,
      { type: 'output-size', bits: 52 },
      { type: 'pasid-size', bits: 4 },
      { type: 'pasid-table-fmt', format: TableFormat.ARM_SMMU_V3, asidBits: 0, flags: 0 },
      { type: 'page-size-mask', mask: 0x4020_1000n },
      input,
      { type: 'output-size', bits: 52 },
      { type: 'page-table-fmt', format: TableFormat.VIRT, asidBits: 0, flags: 0 },
    ]);
    const only = await h.submit(encodeProbe({ endpoint: 2 }), 516);
    expect(parseProperties(only.written.subarray(0, 512)).map((p) => p.type)).toEqual([
      'page-size-mask',
      'input-range',
      'output-size',
      'page-table-fmt',
    ]);
  });
});

describe('ATTACH_TABLE statuses', () => {
  it('flags, endpoint, format and payload checks', async () => {
    const { h, l0, attachTable } = setup();
    expect(await requestStatus(h, attachTable(1, 1, TableFormat.VIRT, l0, 1))).toBe(Status.INVAL);
    expect(await requestStatus(h, attachTable(1, 9, TableFormat.VIRT, l0))).toBe(Status.NOENT);
    expect(await requestStatus(h, attachTable(1, 2, TableFormat.ARM_SMMU_V3, l0))).toBe(Status.UNSUPP);
    expect(await requestStatus(h, attachTable(1, 1, 9, l0))).toBe(Status.UNSUPP);
    expect(await requestStatus(h, attachTable(1, 1, TableFormat.VIRT, l0 + 8))).toBe(Status.INVAL);
    expect(await requestStatus(h, attachTable(1, 1, TableFormat.VIRT, 0x1000))).toBe(Status.FAULT);
    const reserved = attachTable(1, 1, TableFormat.VIRT, l0);
    reserved[20] = 1;
    expect(await requestStatus(h, reserved)).toBe(Status.INVAL);
    expect(h.device.domains()).toEqual([]);
  });

  it('binds, shares the same table, refuses a different one and MAP/UNMAP on it', async () => {
    const { h, virt, l0, page, attachTable } = setup();
    const attaches: unknown[] = [];
    h.device.on('attach', (e) => attaches.push(e));
    expect(await requestStatus(h, attachTable(1, 1, TableFormat.VIRT, l0))).toBe(Status.OK);
    expect(attaches).toEqual([
      { domain: 1, endpoint: 1, kind: 'table', format: TableFormat.VIRT, created: true },
    ]);
    expect(await requestStatus(h, attachTable(1, 2, TableFormat.VIRT, l0))).toBe(Status.OK);
    expect(await requestStatus(h, attachTable(1, 3, TableFormat.VIRT, page))).toBe(Status.UNSUPP);
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 3 }))).toBe(Status.UNSUPP);
    expect(h.device.domains()).toEqual([
      { id: 1, kind: 'table', endpoints: [1, 2], mappings: 0, format: TableFormat.VIRT },
    ]);
    const map = encodeMap({ domain: 1, virtStart: 0, virtEnd: 0xfff, physStart: 0, flags: MapFlag.READ });
    expect(await requestStatus(h, map)).toBe(Status.INVAL);
    expect(await requestStatus(h, encodeUnmap({ domain: 1, virtStart: 0, virtEnd: 0xfff }))).toBe(
      Status.INVAL,
    );
    // A map domain cannot take a table.
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 3 }))).toBe(Status.OK);
    expect(await requestStatus(h, attachTable(2, 3, TableFormat.VIRT, l0))).toBe(Status.UNSUPP);
    // The table goes with the domain's last endpoint.
    expect(await requestStatus(h, encodeDetach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    expect(virt.tables[0]!.released).toBe(false);
    expect(await requestStatus(h, encodeDetach({ domain: 1, endpoint: 2 }))).toBe(Status.OK);
    expect(virt.tables[0]!.released).toBe(true);
  });
});

describe('ATTACH_TABLE moves and caps', () => {
  it('moves an endpoint out of its map domain (which dies); a new domain beyond maxDomains is S_NOMEM', async () => {
    const virt = createFakeNestedBackend({ format: TableFormat.VIRT });
    const h = createVirtioIommuHarness({
      endpoints: [{ id: 1 }, { id: 2 }],
      plugins: [fakeNestedPlugin(virt)],
      maxDomains: 1,
    });
    const root = h.guest.allocator.alloc(0x1000);
    const payload = new Uint8Array(66);
    new DataView(payload.buffer).setBigUint64(6, BigInt(root), true);
    expect(await requestStatus(h, encodeAttach({ domain: 5, endpoint: 1 }))).toBe(Status.OK);
    const map = encodeMap({ domain: 5, virtStart: 0, virtEnd: 0xfff, physStart: 0, flags: MapFlag.READ });
    expect(await requestStatus(h, map)).toBe(Status.OK);
    const table = (domain: number, endpoint: number) =>
      encodeAttachTable({ domain, endpoint, format: TableFormat.VIRT, payload });
    expect(await requestStatus(h, table(6, 2))).toBe(Status.NOMEM);
    expect(virt.tables).toHaveLength(0);
    expect(await requestStatus(h, table(6, 1))).toBe(Status.OK);
    expect(h.device.domains()).toEqual([
      { id: 6, kind: 'table', endpoints: [1], mappings: 0, format: TableFormat.VIRT },
    ]);
    expect(h.device.mappingCount).toBe(0);
    expect(await requestStatus(h, table(6, 1))).toBe(Status.OK);
    expect(virt.tables).toHaveLength(1);
  });
});

describe('INVALIDATE', () => {
  it('statuses, and the decoded request reaches the table', async () => {
    const { h, virt, l0, attachTable } = setup();
    const inval = (fields: Partial<Parameters<typeof encodeInvalidate>[0]> = {}) =>
      encodeInvalidate({
        granularity: InvalidateGranularity.VA,
        caches: InvalidateCache.IOTLB,
        domain: 1,
        ...fields,
      });
    expect(await requestStatus(h, inval())).toBe(Status.NOENT);
    expect(await requestStatus(h, attachTable(1, 1, TableFormat.VIRT, l0))).toBe(Status.OK);
    expect(await requestStatus(h, inval({ granularity: 3 }))).toBe(Status.INVAL);
    expect(await requestStatus(h, inval({ caches: 8 }))).toBe(Status.INVAL);
    expect(await requestStatus(h, inval({ flags: 8 }))).toBe(Status.INVAL);
    const reserved = inval();
    reserved[50] = 1;
    expect(await requestStatus(h, reserved)).toBe(Status.INVAL);
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 3 }))).toBe(Status.OK);
    expect(await requestStatus(h, inval({ domain: 2 }))).toBe(Status.INVAL);
    const request = inval({
      flags: InvalidateFlag.PASID | InvalidateFlag.ARCHID | InvalidateFlag.LEAF,
      pasid: 5,
      archid: 0x1234n,
      virtStart: 0xffff_ffff_ffff_f000n,
      nrPages: 2n,
      granule: 12,
    });
    expect(await requestStatus(h, request)).toBe(Status.OK);
    expect(virt.tables[0]!.invalidations).toEqual([
      {
        granularity: 'va',
        caches: { iotlb: true, devIotlb: false, pasid: false },
        leaf: true,
        pasid: 5,
        archid: 0x1234n,
        virtStart: 0xffff_ffff_ffff_f000n,
        nrPages: 2n,
        granule: 12,
      },
    ]);
  });
});

describe('nested translation', () => {
  it('walks the guest table, and reports walk faults with the extended reasons', async () => {
    const { h, l0, page, attachTable } = setup();
    expect(await requestStatus(h, attachTable(1, 1, TableFormat.VIRT, l0))).toBe(Status.OK);
    expect(h.translate({ endpoint: 1, iova: BigInt(IOVA + 0x18), access: 'read' })).toEqual({
      ok: true,
      address: BigInt(page + 0x18),
    });
    expect(h.translate({ endpoint: 1, iova: BigInt(IOVA), access: 'write' })).toMatchObject({
      fault: { reason: FaultReason.PERMISSION },
    });
    expect(h.translate({ endpoint: 1, iova: BigInt(IOVA + 0x1000), access: 'read' })).toMatchObject({
      fault: { reason: FaultReason.PTE_FETCH },
    });
    expect(h.translate({ endpoint: 1, iova: 1n << 50n, access: 'read' })).toMatchObject({
      fault: { reason: FaultReason.OOR_ADDRESS },
    });
    expect(h.events().map((e) => e.reason)).toEqual([
      FaultReason.PERMISSION,
      FaultReason.PTE_FETCH,
      FaultReason.OOR_ADDRESS,
    ]);
  });

  it('resolves a PASID through the PASID table and reports it at offset 12 with F_PASID', async () => {
    const { h, page, pasidTable, attachTable } = setup();
    expect(await requestStatus(h, attachTable(4, 1, TableFormat.ARM_SMMU_V3, pasidTable))).toBe(Status.OK);
    expect(h.translate({ endpoint: 1, iova: BigInt(IOVA + 4), access: 'read', pasid: 5 })).toMatchObject({
      ok: true,
      address: BigInt(page + 4),
    });
    expect(h.translate({ endpoint: 1, iova: BigInt(IOVA), access: 'read', pasid: 6 })).toMatchObject({
      fault: { reason: FaultReason.DOMAIN, pasid: 6 },
    });
    expect(h.events()).toEqual([
      {
        reason: FaultReason.DOMAIN,
        flags: FaultFlag.READ | FaultFlag.ADDRESS | FaultFlag.PASID,
        endpoint: 1,
        pasid: 6,
        address: BigInt(IOVA),
      },
    ]);
  });
});
