import { IommuProt, type IoPgtableCfg, PasidTableLibrary } from '@vmmkit/core';
import { armLpaeS1Format, armSmmuV3PasidVendor, S1Dss, smmuv3Plugin } from '@vmmkit/smmuv3';
import { describe, expect, it } from 'vitest';
import {
  FaultFlag,
  FaultReason,
  InvalidateCache,
  InvalidateFlag,
  InvalidateGranularity,
  Status,
  TableFormat,
} from '../protocol/constants.js';
import { parseProperties } from '../protocol/properties.js';
import { encodeAttachTable, encodeDetach, encodeInvalidate, encodeProbe } from '../protocol/requests.js';
import { createVirtioIommuHarness, requestStatus } from '../testing/index.js';

/**
 * End to end with the `arm` vendor plugin: the guest builds an SMMUv3 CD table and an Arm LPAE
 * stage-1 table in guest memory with the PASID-table library, hands them over with ATTACH_TABLE
 * through the request queue, and endpoint DMA is translated by the SMMUv3 model behind the
 * device's nested backend; INVALIDATE reaches its caches; faults come back as fault reports.
 * The package does not depend on @vmmkit/smmuv3: this cross-package test imports its sources.
 */

const ENDPOINT = 3;
const IOVA = 0x10_0000;
const PA = 0x4120_0000;

function setup() {
  const h = createVirtioIommuHarness({
    endpoints: [{ id: ENDPOINT }],
    plugins: [smmuv3Plugin],
    memorySize: 64 << 20,
  });
  const { memory, allocator } = h.guest;
  const syncs: { pasid: number; leaf: boolean }[] = [];
  const library = new PasidTableLibrary([armSmmuV3PasidVendor]);
  const cdTable = library.registerPasidTable(
    'arm-smmu-v3',
    { name: 'viommu', memory, allocator, features: { ssidBits: 8, cd2l: false } },
    ENDPOINT,
    { sync: (_cookie, pasid, leaf) => syncs.push({ pasid, leaf }) },
  );
  cdTable.cfg.vendor.arm = { s1dss: S1Dss.TERMINATE };
  cdTable.alloc();
  const pgtableCfg: IoPgtableCfg = {
    ias: 48,
    oas: 48,
    pgsizeBitmap: 0x1000 | 0x20_0000 | 0x4000_0000,
    coherentWalk: true,
    memory,
    allocator,
    vendor: {},
    tlb: { flushAll: () => {}, flushWalk: () => {}, addPage: () => {} },
  };
  const pgtable = armLpaeS1Format.alloc(pgtableCfg);
  pgtable.map(IOVA, PA, 0x20_0000, IommuProt.READ | IommuProt.WRITE);
  cdTable.write(1, cdTable.prepare(pgtableCfg, 1));
  const { format, payload } = cdTable.attachDescriptor();
  const attach = encodeAttachTable({ domain: 1, endpoint: ENDPOINT, format, payload: payload.subarray(2) });
  return { h, pgtable, attach, format, syncs };
}

describe('virtio-iommu nested over the SMMUv3 model', () => {
  it('PROBE offers the arm formats', async () => {
    const { h } = setup();
    const { written } = await h.submit(encodeProbe({ endpoint: ENDPOINT }), 516);
    const properties = parseProperties(written.subarray(0, 512));
    expect(properties).toContainEqual(
      expect.objectContaining({ type: 'pasid-table-fmt', format: TableFormat.ARM_SMMU_V3 }),
    );
    expect(properties).toContainEqual(
      expect.objectContaining({ type: 'page-table-fmt', format: TableFormat.ARM_LPAE }),
    );
    expect(properties).toContainEqual({ type: 'pasid-size', bits: 20 });
  });

  it('ATTACH_TABLE, then DMA with a PASID is walked through the guest tables', async () => {
    const { h, attach, format } = setup();
    expect(format).toBe(TableFormat.ARM_SMMU_V3);
    expect(await requestStatus(h, attach)).toBe(Status.OK);
    expect(h.device.domains()).toEqual([
      { id: 1, kind: 'table', endpoints: [ENDPOINT], mappings: 0, format: TableFormat.ARM_SMMU_V3 },
    ]);
    expect(
      h.translate({ endpoint: ENDPOINT, iova: BigInt(IOVA + 0x3456), access: 'write', pasid: 1 }),
    ).toEqual({
      ok: true,
      address: BigInt(PA + 0x3456),
    });
    // PASID 2 has no CD, DMA without PASID meets s1dss TERMINATE, and 0x40_0000 is unmapped.
    for (const [iova, pasid] of [
      [IOVA, 2],
      [IOVA, undefined],
      [0x40_0000, 1],
    ] as const) {
      expect(h.translate({ endpoint: ENDPOINT, iova: BigInt(iova), access: 'read', pasid }).ok).toBe(false);
    }
    const reports = h.events();
    expect(reports).toHaveLength(3);
    expect(reports[0]).toMatchObject({ endpoint: ENDPOINT, pasid: 2, address: BigInt(IOVA) });
    expect(reports[0]!.flags & FaultFlag.PASID).toBe(FaultFlag.PASID);
    expect(reports[1]!.flags & FaultFlag.PASID).toBe(0);
    expect(reports[2]).toMatchObject({ reason: FaultReason.PTE_FETCH, pasid: 1, address: 0x40_0000n });
  });

  it('after the guest unmaps and sends INVALIDATE, the DMA faults', async () => {
    const { h, attach, pgtable } = setup();
    expect(await requestStatus(h, attach)).toBe(Status.OK);
    const dma = () => h.translate({ endpoint: ENDPOINT, iova: BigInt(IOVA + 8), access: 'read', pasid: 1 });
    expect(dma().ok).toBe(true);
    expect(pgtable.unmap(IOVA, 0x20_0000)).toBe(0x20_0000);
    const invalidate = encodeInvalidate({
      granularity: InvalidateGranularity.PASID,
      caches: InvalidateCache.IOTLB,
      flags: InvalidateFlag.PASID | InvalidateFlag.ARCHID,
      domain: 1,
      pasid: 1,
      archid: 1n,
    });
    expect(await requestStatus(h, invalidate)).toBe(Status.OK);
    expect(dma()).toMatchObject({ ok: false, fault: { pasid: 1 } });
  });

  it('a second ATTACH_TABLE with another table for the same domain is S_UNSUPP; DETACH releases it', async () => {
    const { h, attach } = setup();
    expect(await requestStatus(h, attach)).toBe(Status.OK);
    const other = attach.slice();
    other[24] = (other[24]! + 0x40) & 0xff; // another CD table pointer (still aligned)
    expect(await requestStatus(h, other)).toBe(Status.UNSUPP);
    expect(await requestStatus(h, encodeDetach({ domain: 1, endpoint: ENDPOINT }))).toBe(Status.OK);
    expect(h.device.domains()).toEqual([]);
    expect(h.translate({ endpoint: ENDPOINT, iova: BigInt(IOVA), access: 'read', pasid: 1 }).ok).toBe(true);
  });

  it('format 1: one Arm LPAE table for DMA without PASID', async () => {
    const h = createVirtioIommuHarness({
      endpoints: [{ id: ENDPOINT }],
      plugins: [smmuv3Plugin],
      memorySize: 64 << 20,
    });
    const { memory, allocator } = h.guest;
    const cfg: IoPgtableCfg = {
      ias: 48,
      oas: 48,
      pgsizeBitmap: 0x1000 | 0x20_0000 | 0x4000_0000,
      coherentWalk: true,
      memory,
      allocator,
      vendor: {},
      tlb: { flushAll: () => {}, flushWalk: () => {}, addPage: () => {} },
    };
    const pgtable = armLpaeS1Format.alloc(cfg);
    pgtable.map(0x20_0000, PA, 0x20_0000, IommuProt.READ);
    const { format, payload } = armLpaeS1Format.attachDescriptor!(cfg, 7);
    expect(format).toBe(TableFormat.ARM_LPAE);
    const attach = encodeAttachTable({ domain: 9, endpoint: ENDPOINT, format, payload: payload.subarray(2) });
    expect(await requestStatus(h, attach)).toBe(Status.OK);
    expect(h.translate({ endpoint: ENDPOINT, iova: 0x20_1234n, access: 'read' })).toEqual({
      ok: true,
      address: BigInt(PA + 0x1234),
    });
    expect(h.translate({ endpoint: ENDPOINT, iova: 0x20_1234n, access: 'write' })).toMatchObject({
      fault: { reason: FaultReason.PERMISSION },
    });
    // A single page table has no PASIDs.
    expect(h.translate({ endpoint: ENDPOINT, iova: 0x20_1234n, access: 'read', pasid: 1 }).ok).toBe(false);
  });
});
