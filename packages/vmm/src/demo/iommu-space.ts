import { createContainer, IommuProt } from '@vmmkit/core';
import {
  type IommuFault,
  type NestedPasidDomain,
  VIRTIO_IOMMU_DEVICE_ID,
  VirtioIommuDriver,
} from '@vmmkit/virtio-iommu';
import { ContainerModule } from 'inversify';
import type { GuestRuntime } from '../vcpu/guest-runtime.js';
import type { DmaSpace } from './dma-space.js';
import type { DemoArgs, DemoFault } from './report.js';

/** Every context maps its buffers from the same IOVA: the PASID alone tells them apart. */
const IOVA_BASE = 0x4000_0000;
/** Never mapped in any context: the deliberate fault's address. */
const UNMAPPED_IOVA = 0x7fff_0000;
const PAGE = 0x1000;

async function guestPlugins(modules: readonly string[]): Promise<ContainerModule[]> {
  const plugins: ContainerModule[] = [];
  for (const url of modules) {
    const mod = (await import(url)) as Record<string, unknown>;
    for (const value of Object.values(mod)) if (value instanceof ContainerModule) plugins.push(value);
  }
  return [...new Set(plugins)];
}

function toReport(fault: IommuFault): NonNullable<DemoFault['report']> {
  return {
    reason: fault.reason,
    endpoint: fault.endpoint,
    pasid: fault.pasid ?? null,
    address: fault.address === undefined ? null : Number(fault.address),
    flags: fault.flags,
  };
}

/**
 * The DMA contexts through the guest's virtio-iommu driver: a PASID table with one stage-1
 * table per PASID (`--nested arm`), one guest page table (`--nested <page-table format>`), or
 * a MAP/UNMAP domain (`--nested off`).
 */
export async function iommuSpace(rt: GuestRuntime, args: DemoArgs, endpoint: number): Promise<DmaSpace> {
  const [found] = rt.findVirtioDevices(VIRTIO_IOMMU_DEVICE_ID);
  if (found === undefined) throw new Error('the device tree has no virtio-iommu');
  const irq = found.node.irq!;
  const container = createContainer(await guestPlugins(args.pluginModules));
  const wait = rt.completionWait(irq);
  const driver = new VirtioIommuDriver({
    mmio: rt.mmio,
    base: found.node.base,
    memory: rt.memory,
    allocator: rt.allocator,
    container,
    ...(wait ? { wait } : {}),
  });
  const faults: IommuFault[] = [];
  driver.on('fault', (fault) => faults.push(fault));
  const setup = [`virtio-iommu at 0x${found.node.base.toString(16)} (irq ${irq}), endpoint ${endpoint}`];
  const next = new Map<number | null, number>();
  const nextIova = (context: number | null, length: number) => {
    const iova = next.get(context) ?? IOVA_BASE;
    next.set(context, iova + Math.ceil(length / PAGE) * PAGE);
    return iova;
  };
  const prot = IommuProt.READ | IommuProt.WRITE;
  const nested = args.nested;
  let map: (context: number | null, gpa: number, length: number) => number;
  let close: () => void;
  let contexts: (number | null)[];

  if (nested.kind === 'pasid-table') {
    const pasids = Array.from({ length: args.pasids }, (_, i) => i + 1);
    const domain: NestedPasidDomain = driver.attachPasidTable(endpoint, {
      pasidTableFormat: nested.pasidTableFormat,
      pgtableFormat: nested.pgtableFormat,
      pasids,
    });
    setup.push(
      `attached an ${nested.pasidTableFormat} PASID table with ${pasids.length} PASIDs (${pasids.join(', ')}), ${nested.pgtableFormat} tables`,
    );
    contexts = pasids;
    map = (context, gpa, length) => {
      const iova = nextIova(context, length);
      domain.map(context!, iova, gpa, Math.ceil(length / PAGE) * PAGE, prot);
      return iova;
    };
    close = () => domain.destroy();
  } else if (nested.kind === 'page-table') {
    // The format declares which virtio-iommu table format it builds (virtioIommuFormat), so the
    // driver picks that offer when the endpoint offers several.
    const domain = driver.attachPageTable(endpoint, { pgtableFormat: nested.pgtableFormat });
    setup.push(`attached one ${nested.pgtableFormat} page table (no PASIDs)`);
    contexts = [null];
    map = (context, gpa, length) => {
      const iova = nextIova(context, length);
      domain.map(iova, gpa, Math.ceil(length / PAGE) * PAGE, prot);
      return iova;
    };
    close = () => domain.destroy();
  } else {
    const domain = driver.createDomain('paging');
    driver.attach(endpoint, domain);
    setup.push(`attached to MAP/UNMAP domain ${domain}`);
    contexts = [null];
    map = (context, gpa, length) => {
      const iova = nextIova(context, length);
      driver.map(domain, iova, gpa, Math.ceil(length / PAGE) * PAGE, { read: true, write: true });
      return iova;
    };
    close = () => {
      driver.detach(endpoint);
      driver.destroyDomain(domain);
    };
  }

  return {
    contexts,
    setup,
    map,
    unmappedIova: () => UNMAPPED_IOVA,
    async takeFaultReports() {
      // The report was queued while the engine ran; the interrupt says the event queue moved.
      await rt.waitForInterrupt(irq, 1000);
      driver.handleInterrupt();
      return faults.splice(0).map(toReport);
    },
    close,
  };
}
