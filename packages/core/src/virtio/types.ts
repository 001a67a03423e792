import type { GuestMemory } from '../memory/guest-memory.js';

/** Transport-level feature bits (virtio 1.2 §6). Device-specific bits are below 24. */
export const VirtioFeature = {
  INDIRECT_DESC: 28,
  EVENT_IDX: 29,
  VERSION_1: 32,
  ACCESS_PLATFORM: 33,
  RING_PACKED: 34,
} as const;

/** Device status bits (virtio 1.2 §2.1). */
export const DeviceStatus = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 0x40,
  FAILED: 0x80,
} as const;

/** `1n << BigInt(bit)`, for feature masks (cold path only). */
export function featureBit(bit: number): bigint {
  return 1n << BigInt(bit);
}

/** One guest buffer of a chain: a guest-physical range that was checked to lie in RAM. */
export interface Segment {
  addr: number;
  len: number;
}

/** Guest-physical placement of one split virtqueue (virtio 1.2 §2.7). */
export interface QueueLayout {
  /** Number of entries, a power of two from 1 to 32768. */
  size: number;
  /** Descriptor table (16 bytes per entry, 16-byte aligned). */
  descTable: number;
  /** Driver area: flags, idx, ring[size], used_event (2-byte aligned). */
  availRing: number;
  /** Device area: flags, idx, ring[size] of {id, len}, avail_event (4-byte aligned). */
  usedRing: number;
}

/** Features of a queue that change how the ring is read. */
export interface QueueFeatures {
  eventIdx: boolean;
  indirect: boolean;
}

/** A handle the device raises its interrupt with (an irqfd in kvmtool terms). */
export interface InterruptLine {
  raise(): void;
  lower?(): void;
}

/** Handed to a device when the driver sets DRIVER_OK. */
export interface VirtioActivation<Q> {
  memory: GuestMemory;
  /** One queue per index the driver enabled; `undefined` where it left a queue disabled. */
  queues: (Q | undefined)[];
  /** Features the driver accepted. */
  features: bigint;
  /** Signals the used-buffer notification (interrupt status bit 0). */
  notifyUsed(queueIndex: number): void;
  /** Enters DEVICE_NEEDS_RESET and signals a configuration change. */
  needsReset(reason: string): void;
  /**
   * The device changed its configuration space: the transport bumps ConfigGeneration and sends a
   * configuration change notification. Optional so that other transports may omit it.
   */
  configChanged?(): void;
}

/**
 * What a virtio device implements; a transport (virtio-mmio) drives it. Mirrors the
 * `VirtioDevice` traits of cloud-hypervisor and crosvm.
 */
export interface VirtioDevice<Q = unknown> {
  readonly name: string;
  /** virtio device ID (e.g. 23 for the IOMMU). */
  readonly deviceId: number;
  readonly vendorId: number;
  /** Maximum size of each queue; its length is the number of queues. */
  readonly queueMaxSizes: readonly number[];
  /** Every feature the device offers, transport bits included. */
  readonly deviceFeatures: bigint;
  /** Size in bytes of the device configuration space. */
  readonly configSize: number;
  readConfig(offset: number, size: 1 | 2 | 4): number;
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void;
  /** The driver wrote FEATURES_OK with these features; return false to refuse them. */
  acceptFeatures?(features: bigint): boolean;
  activate(activation: VirtioActivation<Q>): void;
  /** The driver notified queue `queueIndex` (QueueNotify). */
  notify(queueIndex: number): void;
  /**
   * Queues a polling host may watch instead of waiting for their notifications: queues whose
   * available buffers are all work the device does at `notify` (a request queue, not a queue of
   * buffers the device fills later). The transport then keeps their notifications suppressed
   * while the host polls.
   */
  readonly busyPollQueues?: readonly number[];
  /** Device reset: drop all state that the driver set up. */
  reset(): void;
}

/** A region on the MMIO bus (a device's register window). */
export interface MmioHandler {
  readonly name: string;
  /** Size of the window in bytes. */
  readonly size: number;
  read(offset: number, size: 1 | 2 | 4 | 8): number;
  write(offset: number, size: 1 | 2 | 4 | 8, value: number): void;
  /**
   * Optional busy polling, for a host thread that spins between exits anyway (vhost's
   * busy_poll): `startPolling` says the host is polling from now on, `poll` is called on every
   * turn of its loop and returns how much work it found, `stopPolling` is called before the host
   * blocks and returns the work that arrived meanwhile (the host then stays awake).
   */
  startPolling?(): void;
  poll?(): number;
  stopPolling?(): number;
}

/** Guest-side MMIO accessors (the guest runtime routes them to the bus, inline or through a vCPU exit). */
export interface MmioAccessor {
  read32(gpa: number): number;
  write32(gpa: number, value: number): void;
  read8(gpa: number): number;
  write8(gpa: number, value: number): void;
  /** 16-bit accesses, for 16-bit config fields (virtio 1.2 §4.2.2.2); optional. */
  read16?(gpa: number): number;
  write16?(gpa: number, value: number): void;
}
