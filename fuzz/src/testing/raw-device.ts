/**
 * The virtio-iommu device activated directly on rings a hostile driver writes by hand
 * (`MockSplitQueue`), for chains a well-behaved driver queue refuses to build (over 4 GiB,
 * wild indexes). Features as the Linux driver negotiates them.
 */
import { createTestMemory, MockSplitQueue } from '@vmmkit/core/testing';
import { createVirtioIommuDevice, type VirtioIommuDevice } from '@vmmkit/virtio-iommu';
import { linuxDriverFeatures } from '@vmmkit/virtio-iommu/testing';

export const RAW_RAM = 0x4000_0000;

export interface RawDevice {
  device: VirtioIommuDevice;
  requests: MockSplitQueue;
  events: MockSplitQueue;
  memory: ReturnType<typeof createTestMemory>['memory'];
  /** Reasons the device gave for DEVICE_NEEDS_RESET. */
  resets: string[];
  kick(): void;
}

export function createRawDevice(options: {
  memorySize: number;
  queueSize?: number;
  bypass?: boolean;
}): RawDevice {
  const { memory } = createTestMemory({ base: RAW_RAM, size: options.memorySize });
  const size = options.queueSize ?? 256;
  const requests = new MockSplitQueue(memory, RAW_RAM, size);
  const events = new MockSplitQueue(memory, RAW_RAM + 0x1_0000, size);
  const device = createVirtioIommuDevice({
    endpoints: [{ id: 1 }, { id: 2 }],
    bypass: options.bypass ?? true,
  });
  const features = linuxDriverFeatures() & device.deviceFeatures;
  device.acceptFeatures(features);
  const resets: string[] = [];
  device.activate({
    memory,
    queues: [requests.deviceQueue(), events.deviceQueue()],
    features,
    notifyUsed() {},
    needsReset(reason) {
      resets.push(reason);
    },
  });
  return { device, requests, events, memory, resets, kick: () => device.notify(0) };
}
