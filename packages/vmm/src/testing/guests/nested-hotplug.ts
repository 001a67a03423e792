/**
 * Guest program: memory hot-plug under a nested IOMMU. Asks the host (scratch doorbell 1) to
 * plug a bank at `args.gpa`, builds its PASID table and page tables *in that bank*, and DMAs
 * under PASID 1 (which warms the IOMMU's caches). Then asks the host (doorbell 2) to unplug the
 * bank: the same DMA must now fault — the tables are gone from the IOMMU's view too, whatever
 * it had cached — and the fault must be reported.
 */
import { BitmapPageAllocator, IommuProt, type PageAllocator } from '@vmmkit/core';
import type { GuestRuntime } from '../../vcpu/guest-runtime.js';
import { SCRATCH_COMPATIBLE, ScratchReg } from '../scratch-device.js';
import { openNestedGuest, pattern } from './nested-common.js';

/** Rings and buffers come from the vCPU's heap; table pages from the hot-plugged bank once it is set. */
class SplitAllocator implements PageAllocator {
  tables: PageAllocator | null = null;
  private readonly owner = new Map<number, PageAllocator>();
  constructor(private readonly heap: PageAllocator) {}
  alloc(size: number, align?: number): number {
    const from = this.tables ?? this.heap;
    const gpa = from.alloc(size, align);
    this.owner.set(gpa, from);
    return gpa;
  }
  free(gpa: number): void {
    (this.owner.get(gpa) ?? this.heap).free(gpa);
    this.owner.delete(gpa);
  }
}

export default async function nestedHotplug(rt: GuestRuntime) {
  const { gpa, size } = rt.args as { gpa: number; size: number };
  const [scratch] = rt.findDevices(SCRATCH_COMPATIBLE);
  const ask = async (what: number) => {
    rt.mmio.write32(scratch!.base + ScratchReg.DOORBELL, what);
    if (!(await rt.waitForInterrupt(scratch!.irq!, 10_000))) throw new Error(`host did not answer ${what}`);
  };
  await ask(1);
  const plugged = rt.memory.isAccessible(gpa, size, 'write');
  const allocator = new SplitAllocator(rt.allocator);
  const { driver, dma, takeFaults } = openNestedGuest(rt, allocator);
  allocator.tables = new BitmapPageAllocator(rt.memory, { base: gpa, size });
  const domain = driver.attachPasidTable(dma.endpoint, {
    pasidTableFormat: 'arm',
    pgtableFormat: 'arm-lpae-s1',
    pasids: [1],
  });
  allocator.tables = null;
  const src = rt.allocator.alloc(0x1000);
  const dst = rt.allocator.alloc(0x1000);
  rt.memory.write(src, pattern(0x1000, 7));
  domain.map(1, 0x10_0000, src, 0x1000, IommuProt.READ);
  domain.map(1, 0x20_0000, dst, 0x1000, IommuProt.READ | IommuProt.WRITE);
  const job = { op: 'copy', src: 0x10_0000, dst: 0x20_0000, length: 0x1000, pasid: 1 } as const;
  const before = await dma.run(job);
  const copied = Buffer.compare(rt.memory.read(dst, 0x1000), pattern(0x1000, 7)) === 0;
  rt.memory.fill(dst, 0x1000, 0);
  await ask(2);
  const unplugged = !rt.memory.isAccessible(gpa, 4, 'read');
  const after = await dma.run(job);
  const untouched = rt.memory.read(dst, 0x1000).every((b) => b === 0);
  return { plugged, before, copied, unplugged, after, untouched, reports: await takeFaults() };
}
