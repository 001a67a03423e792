/**
 * The virtio-iommu as a machine device, composed from public pieces only (core's virtio-mmio
 * transport, the device factory, the container's nested backends): it becomes the machine's
 * IOMMU, so the DMA engines translate through it.
 */
import {
  type DmaAccess,
  type NestedBackendRegistry,
  TOKENS,
  VirtioMmioReg,
  VirtioMmioTransport,
} from '@vmmkit/core';
import { createPageTranslation, createVirtioIommuDevice, type VirtioIommuDevice } from '@vmmkit/virtio-iommu';
import type { DeviceSpec, DmaPage } from '@vmmkit/vmm';

const PAGE = 0x1000;

export function soakIommu(endpoints: readonly number[]): DeviceSpec & { device(): VirtioIommuDevice } {
  let device: VirtioIommuDevice | null = null;
  return {
    name: 'viommu',
    compatible: 'virtio,mmio',
    mmioSize: 0x200,
    create(ctx) {
      const nestedBackends = ctx.container.get<NestedBackendRegistry>(TOKENS.NestedBackendRegistry);
      const iommu = createVirtioIommuDevice({
        name: 'viommu',
        endpoints: endpoints.map((id) => ({ id })),
        bypass: false,
        nestedBackends,
      });
      device = iommu;
      const transport = new VirtioMmioTransport(iommu, { memory: ctx.memory, interrupt: ctx.irq });
      transport.on('deviceError', (error) => ctx.reportError(error));
      const out = createPageTranslation();
      return {
        mmio: transport,
        doorbells: [VirtioMmioReg.QUEUE_NOTIFY],
        translator: {
          name: 'virtio-iommu',
          translatePage(endpoint: number, pasid: number, iovaPage: number, access: DmaAccess, page: DmaPage) {
            const lo = (iovaPage % 2 ** 20) * PAGE;
            const hi = Math.floor(iovaPage / 2 ** 20);
            if (!iommu.translatePageHalves(endpoint, pasid, lo, hi, access, out)) {
              page.fault = out.reason;
              return false;
            }
            page.pa = out.pa < 0 ? Number.MAX_SAFE_INTEGER : out.pa;
            return true;
          },
        },
        destroy() {
          transport.removeAllListeners();
          iommu.reset();
        },
      };
    },
    device() {
      if (device === null) throw new Error('the soak IOMMU has not been placed yet');
      return device;
    },
  };
}
