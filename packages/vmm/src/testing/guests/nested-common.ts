/**
 * What the nested guest programs share: the virtio-iommu guest driver over the machine's
 * virtio-mmio window (with the Arm vendor plugin on the guest side), and a fault collector
 * that waits for the IOMMU's interrupt the way a guest kernel would.
 */
import { createContainer, type PageAllocator } from '@vmmkit/core';
import { smmuv3Plugin } from '@vmmkit/smmuv3';
import { type IommuFault, VIRTIO_IOMMU_DEVICE_ID, VirtioIommuDriver } from '@vmmkit/virtio-iommu';
import { DmaEngineDriver } from '../../dma/dma-driver.js';
import type { GuestRuntime } from '../../vcpu/guest-runtime.js';

export interface NestedGuest {
  driver: VirtioIommuDriver;
  dma: DmaEngineDriver;
  /** Waits up to a second for the IOMMU's interrupt and returns the fault reports it brought. */
  takeFaults(): Promise<{ reason: string; endpoint: number; pasid: number | null; address: number | null }[]>;
}

export function openNestedGuest(rt: GuestRuntime, allocator: PageAllocator = rt.allocator): NestedGuest {
  const [iommu] = rt.findVirtioDevices(VIRTIO_IOMMU_DEVICE_ID);
  const [dma] = DmaEngineDriver.probe(rt);
  if (iommu === undefined || dma === undefined)
    throw new Error('the machine lacks a virtio-iommu or a DMA engine');
  const irq = iommu.node.irq!;
  const wait = rt.completionWait(irq);
  const driver = new VirtioIommuDriver({
    mmio: rt.mmio,
    base: iommu.node.base,
    memory: rt.memory,
    allocator,
    container: createContainer([smmuv3Plugin]),
    ...(wait ? { wait } : {}),
  });
  const faults: IommuFault[] = [];
  driver.on('fault', (fault) => faults.push(fault));
  return {
    driver,
    dma,
    async takeFaults() {
      await rt.waitForInterrupt(irq, 1000);
      driver.handleInterrupt();
      return faults.splice(0).map((f) => ({
        reason: f.reason,
        endpoint: f.endpoint,
        pasid: f.pasid ?? null,
        address: f.address === undefined ? null : Number(f.address),
      }));
    },
  };
}

/** A distinct byte pattern per PASID, so a DMA through the wrong context cannot pass for right. */
export function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 13 + seed * 101 + (i >> 8)) & 0xff);
}
