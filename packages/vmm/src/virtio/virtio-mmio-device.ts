import { type DeviceQueue, type VirtioDevice, VirtioMmioReg, VirtioMmioTransport } from '@vmmkit/core';
import type { DeviceContext, DeviceInstance, DeviceSpec } from '../devices.js';

/** virtio-mmio windows are 0x200 bytes in device trees (Linux, kvmtool, QEMU); config may extend it. */
export const VIRTIO_MMIO_WINDOW = 0x200;
export const VIRTIO_MMIO_COMPATIBLE = 'virtio,mmio';

export interface VirtioMmioDeviceOptions {
  name: string;
  /** Window size when the device's config space needs more than 0x200 bytes. */
  mmioSize?: number;
  gpa?: number;
  endpoint?: number;
  /** Extra work for the placed instance (an IOMMU's translator, properties, teardown). */
  extend?(ctx: DeviceContext, transport: VirtioMmioTransport): Partial<DeviceInstance>;
}

/**
 * A virtio device behind its own virtio-mmio transport (one transport per device, as kvmtool's
 * `virtio_init` with the MMIO transport). QueueNotify is a posted doorbell (ioeventfd): the vCPU
 * does not wait for the device to process the queue; a later exit or the interrupt tells it.
 */
export function virtioMmioDevice(
  options: VirtioMmioDeviceOptions,
  create: (ctx: DeviceContext) => VirtioDevice<DeviceQueue>,
): DeviceSpec {
  return {
    name: options.name,
    compatible: VIRTIO_MMIO_COMPATIBLE,
    mmioSize: options.mmioSize ?? VIRTIO_MMIO_WINDOW,
    ...(options.gpa === undefined ? {} : { gpa: options.gpa }),
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    create(ctx) {
      const device = create(ctx);
      const transport = new VirtioMmioTransport(device, { memory: ctx.memory, interrupt: ctx.irq });
      transport.on('deviceError', (error) => ctx.reportError(error));
      const extra = options.extend?.(ctx, transport) ?? {};
      return {
        mmio: transport,
        doorbells: [VirtioMmioReg.QUEUE_NOTIFY],
        ...extra,
        destroy: async () => {
          await extra.destroy?.();
          transport.removeAllListeners();
          device.reset();
        },
      };
    },
  };
}
