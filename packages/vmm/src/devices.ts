import type { GuestMemory, InterruptLine, MemoryBank, MmioHandler } from '@vmmkit/core';
import type { Container } from 'inversify';
import type { DmaTranslator } from './dma/translator.js';
import type { DeviceNode } from './vcpu/guest-runtime.js';

/** What a device factory receives when the machine places it. */
export interface DeviceContext {
  readonly name: string;
  readonly memory: GuestMemory;
  readonly container: Container;
  /** Base of the device's MMIO window. */
  readonly base: number;
  /** The device's interrupt line (a no-op line when the spec asked for none). */
  readonly irq: InterruptLine;
  readonly irqNumber: number | null;
  /** The machine's IOMMU as DMA-capable devices see it (identity when the machine has none). */
  translator(): DmaTranslator;
  /** Reports a device-internal failure as a VM error without stopping the host. */
  reportError(error: unknown): void;
}

/** A device of the machine: how big its window is, what it publishes, and how to build it. */
export interface DeviceSpec {
  name: string;
  /** Device-tree `compatible` string the guest finds it by. */
  compatible: string;
  /** Size of the MMIO window in bytes. */
  mmioSize: number;
  /** Fixed base of the window; otherwise the machine places it. */
  gpa?: number;
  /** Whether the device gets an interrupt line (default true). */
  irq?: boolean;
  /** Endpoint ID behind the IOMMU, published to the guest. */
  endpoint?: number;
  create(ctx: DeviceContext): DeviceInstance | Promise<DeviceInstance>;
}

/** A run-time change of the machine's RAM, as devices are told of it. */
export interface MemoryChange {
  op: 'add' | 'remove';
  bank: MemoryBank;
}

/** A placed device. */
export interface DeviceInstance {
  mmio: MmioHandler;
  /** Offsets in the window whose writes are doorbells: posted by vCPUs, not waited for. */
  doorbells?: readonly number[];
  /** Facts published in the device node (numbers, strings, booleans). */
  properties?: Record<string, number | string | boolean>;
  /** Set by the device that is the machine's IOMMU: DMA-capable devices translate through it. */
  translator?: DmaTranslator;
  /**
   * A RAM bank was plugged in or out at run time (after `memory` already changed). Devices that
   * cache anything derived from guest memory drop it here: an IOMMU that cached translations
   * or table entries read from a bank that is gone must not keep using them (the host's
   * stage-2 view changed, as when a VMM unmaps guest memory and flushes the IOMMU's TLBs).
   */
  memoryChanged?(change: MemoryChange): void;
  destroy?(): void | Promise<void>;
}

/** A device as placed on the machine. */
export interface PlacedDevice {
  spec: DeviceSpec;
  node: DeviceNode;
  instance: DeviceInstance;
}
