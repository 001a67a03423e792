/**
 * Options, events and feature/status rules of the virtio-mmio transport (virtio 1.2 §2.1, §2.2,
 * §4.2), kept apart from the register file itself.
 */
import type { GuestMemory } from '../memory/guest-memory.js';
import { DeviceQueue } from './device-queue.js';
import type { QueueRegisters } from './mmio-queue-registers.js';
import { DeviceStatus, featureBit, type InterruptLine, VirtioFeature } from './types.js';

export interface VirtioMmioTransportOptions {
  memory: GuestMemory;
  interrupt: InterruptLine;
}

export interface VirtioMmioTransportEvents {
  /** The driver wrote Status; `status` is what the register holds afterwards. */
  status: (status: number) => void;
  /** Status 0 was written: device and transport are back to their initial state. */
  reset: () => void;
  /** DRIVER_OK was accepted and the device activated. */
  activated: (features: bigint) => void;
  /** FEATURES_OK was left clear. */
  featuresRefused: (features: bigint, reason: string) => void;
  /** QueueReady=1 was refused; the queue stays not ready. */
  queueRefused: (queueIndex: number, reason: string) => void;
  /** The device entered DEVICE_NEEDS_RESET. */
  needsReset: (reason: string) => void;
  /** A device callback threw; the transport contained it and asked for a reset. */
  deviceError: (error: unknown) => void;
}

/** Transport features the split-ring virtio-mmio transport here does not implement. */
export const UNSUPPORTED_FEATURES =
  featureBit(VirtioFeature.RING_PACKED) |
  featureBit(38) /* NOTIFICATION_DATA */ |
  featureBit(40) /* RING_RESET */;

export const DRIVER_BITS =
  DeviceStatus.ACKNOWLEDGE |
  DeviceStatus.DRIVER |
  DeviceStatus.FEATURES_OK |
  DeviceStatus.DRIVER_OK |
  DeviceStatus.FAILED;

/**
 * What the transport itself refuses in the driver's FEATURES_OK (before the device is asked),
 * or `null`: `status` is the Status register, `offered` what the device offers.
 */
export function transportFeaturesProblem(features: bigint, status: number, offered: bigint): string | null {
  // virtio 1.2 §3.1.1: FEATURES_OK follows DRIVER.
  if ((status & DeviceStatus.DRIVER) === 0) return 'FEATURES_OK before DRIVER';
  // virtio 1.2 §2.1.2: only a reset leaves DEVICE_NEEDS_RESET.
  if ((status & DeviceStatus.DEVICE_NEEDS_RESET) !== 0) return 'the device needs a reset';
  // virtio 1.2 §2.2.1: the driver accepts only features the device offered.
  const extra = features & ~offered;
  if (extra !== 0n) return `features 0x${extra.toString(16)} were not offered`;
  // virtio 1.2 §6.1: this is a non-legacy transport, VERSION_1 is mandatory.
  if ((features & featureBit(VirtioFeature.VERSION_1)) === 0n) return 'VERSION_1 not accepted';
  return null;
}

/** virtio 1.2 §4.2.2.2: config fields take naturally aligned 8-, 16- or 32-bit accesses. */
export function configAccessOk(offset: number, size: number, configSize: number): boolean {
  return (size === 1 || size === 2 || size === 4) && offset % size === 0 && offset + size <= configSize;
}

/**
 * At DRIVER_OK: a `DeviceQueue` for every ready queue (`undefined` for the others), with the
 * ring features the driver accepted. Throws, after disposing what it built, when a ring is no
 * longer in RAM.
 */
export function createDeviceQueues(
  regs: readonly QueueRegisters[],
  memory: GuestMemory,
  features: bigint,
  onBroken: (index: number, reason: string) => void,
): (DeviceQueue | undefined)[] {
  const queueFeatures = {
    eventIdx: (features & featureBit(VirtioFeature.EVENT_IDX)) !== 0n,
    indirect: (features & featureBit(VirtioFeature.INDIRECT_DESC)) !== 0n,
  };
  const queues: (DeviceQueue | undefined)[] = [];
  try {
    regs.forEach((q, index) => {
      queues.push(
        q.ready
          ? new DeviceQueue(memory, q.layout(), queueFeatures, (reason) => onBroken(index, reason))
          : undefined,
      );
    });
  } catch (error) {
    for (const queue of queues) queue?.dispose();
    throw error;
  }
  return queues;
}
