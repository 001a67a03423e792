/** The guest-side example of the package README, kept runnable. */
import {
  BitmapPageAllocator,
  GuestMemory,
  IommuProt,
  type IoPgtableCfg,
  PasidTableLibrary,
} from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import { armLpaeS1Format, armSmmuV3PasidVendor, S1Dss } from '../index.js';

describe('README guest example', () => {
  it('builds a CD table, a stage-1 table and the ATTACH_TABLE payload', () => {
    const invalidations: string[] = [];
    // --- README snippet ---
    const memory = new GuestMemory();
    memory.addBank({ gpa: 0x4000_0000, size: 64 * 2 ** 20 });
    const allocator = new BitmapPageAllocator(memory, { base: 0x4000_0000, size: 16 * 2 ** 20 });

    // One endpoint's CD table: 2^16 PASIDs, two-level because the SMMU has CD2L.
    const library = new PasidTableLibrary([armSmmuV3PasidVendor]); // or container.get(TOKENS.PasidTableLibrary)
    const endpoint = 3;
    const cdTable = library.registerPasidTable(
      'arm-smmu-v3',
      { name: 'viommu0', memory, allocator, features: { ssidBits: 16, cd2l: true } },
      endpoint,
      // virtio-iommu: INVALIDATE(PASID cache); an emulated SMMU: CFGI_CD + CMD_SYNC.
      { sync: (cookie, ssid, leaf) => invalidations.push(`ep${cookie} pasid ${ssid} leaf=${leaf}`) },
    );
    cdTable.cfg.vendor.arm = { s1dss: S1Dss.TERMINATE };
    cdTable.alloc();

    // One address space: an arm-lpae-s1 table in guest memory (4K granule, 2M/1G blocks).
    const pgtableCfg: IoPgtableCfg = {
      ias: 48,
      oas: 48,
      pgsizeBitmap: 0x1000 | 0x20_0000 | 0x4000_0000,
      coherentWalk: true,
      memory,
      allocator,
      vendor: {},
      tlb: { flushAll: () => {}, flushWalk: () => {}, addPage: () => {} }, // INVALIDATE(IOTLB) in a real driver
    };
    const pgtable = armLpaeS1Format.alloc(pgtableCfg);
    pgtable.map(0x10_0000, 0x4800_0000, 0x20_0000, IommuProt.READ | IommuProt.WRITE);

    // Bind it to PASID 1 under ASID 1, then describe the CD table for ATTACH_TABLE.
    cdTable.write(1, cdTable.prepare(pgtableCfg, 1));
    const { format, payload } = cdTable.attachDescriptor(); // format 2; payload = request bytes 16..83
    // --- end of snippet ---
    expect(format).toBe(2);
    expect(payload[2]).toBe(2);
    expect(invalidations).toEqual([
      'ep3 pasid 1 leaf=false',
      'ep3 pasid 1 leaf=true',
      'ep3 pasid 1 leaf=true',
    ]);
    expect(pgtable.iovaToPhys(0x12_3456)).toBe(0x4802_3456);
  });
});
