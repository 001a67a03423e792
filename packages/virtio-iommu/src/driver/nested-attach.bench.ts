import { createContainer, type IoPgtableRegistry, type PasidTableLibrary, TOKENS } from '@vmmkit/core';
// Relative until @vmmkit/virtio-iommu lists @vmmkit/smmuv3 as a devDependency (see nested.int.test.ts).
import { smmuv3Plugin } from '@vmmkit/smmuv3';
import { afterAll, bench, describe } from 'vitest';
import { createVirtioIommuHarness } from '../testing/index.js';
import { VirtioIommuDriver } from './driver.js';

/**
 * Nested attach of 1024 PASIDs with the arm vendor: a CD table, one arm-lpae-s1 table per PASID,
 * each CD written with the vendor's ordered stores and synced by INVALIDATE through the device,
 * then ATTACH_TABLE — and the teardown. Baseline in the same run: the same library calls (table,
 * io-pgtables, CD writes) with a sync that does nothing, i.e. without the paravirtual IOMMU.
 */

const PASIDS = Array.from({ length: 1024 }, (_, i) => i);
let failures = 0;

const harness = createVirtioIommuHarness({
  endpoints: [{ id: 1 }],
  plugins: [smmuv3Plugin],
  memorySize: 64 << 20,
});
const { mmio, base, memory, allocator } = harness.guest;
const container = createContainer([smmuv3Plugin]);
const driver = new VirtioIommuDriver({ mmio, base, memory, allocator, container });

function attach1024(): void {
  const nested = driver.attachPasidTable(1, {
    pasidTableFormat: 'arm-smmu-v3',
    pgtableFormat: 'arm-lpae-s1',
    pasids: PASIDS,
  });
  if (nested.pasids.length !== PASIDS.length) failures++;
  nested.destroy();
}

const library = container.get<PasidTableLibrary>(TOKENS.PasidTableLibrary);
const registry = container.get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry);
const noFlush = { flushAll() {}, flushWalk() {}, addPage() {} };

function libraryOnly1024(): void {
  const dev = { name: 'bare', memory, allocator, features: { ssidBits: 10, asidBits: 16 } };
  const table = library.registerPasidTable('arm-smmu-v3', dev, null, { sync: () => {} });
  table.alloc();
  if (table.cfg.base === 0) failures++;
  const tables = PASIDS.map((pasid) => {
    const ops = registry.alloc('arm-lpae-s1', {
      ias: 48,
      oas: 48,
      pgsizeBitmap: 0x4020_1000,
      coherentWalk: true,
      tlb: noFlush,
      memory,
      allocator,
      vendor: {},
    });
    table.write(pasid, table.prepare(ops.cfg, pasid + 1));
    return ops;
  });
  for (const pasid of PASIDS) table.write(pasid, null);
  for (const ops of tables) ops.free();
  table.free();
}

describe('virtio-iommu nested attach, 1024 PASIDs (arm vendor)', () => {
  bench('baseline: the same library calls with a no-op sync', libraryOnly1024, { iterations: 5 });
  bench('attachPasidTable with 1024 PASIDs, then destroy', attach1024, { iterations: 5 });
});

afterAll(() => {
  if (failures !== 0) throw new Error(`${failures} nested attaches went wrong during the benchmark`);
});
