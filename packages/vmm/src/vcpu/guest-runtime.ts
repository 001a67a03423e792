import { type BitmapPageAllocator, type GuestMemory, type MmioAccessor, VmmError } from '@vmmkit/core';
import type { MmioSize } from '../bus/mmio-bus.js';
import type { MmioPort } from './exit-channel.js';

/** Where guest code runs: on the host thread (tests) or on a worker thread (a real vCPU). */
export type VcpuMode = 'inline' | 'worker';

/**
 * One device as the guest firmware would describe it (a device-tree node): the guest finds
 * register windows and interrupt lines here, then talks to the device over MMIO only.
 */
export interface DeviceNode {
  name: string;
  /** `virtio,mmio` for virtio-mmio transports, `vmmkit,dma-engine`, or a plugin's own. */
  compatible: string;
  base: number;
  size: number;
  /** Interrupt line, or null for a device without one. */
  irq: number | null;
  /** Endpoint ID behind the IOMMU (the device tree's `iommus` / `iommu-map`), when it has one. */
  endpoint?: number;
  /** Extra facts a device publishes (numbers and strings only: it crosses threads). */
  properties?: Record<string, number | string | boolean>;
}

/** A virtio-mmio window that answered the probe (virtio 1.2 §4.2.2). */
export interface VirtioMmioProbe {
  node: DeviceNode;
  version: number;
  deviceId: number;
  vendorId: number;
}

export const VIRTIO_MMIO_MAGIC = 0x74726976;

/** Guest MMIO accessors; widths the core `MmioAccessor` lacks are included for device drivers. */
export class GuestMmio implements MmioAccessor {
  constructor(private readonly port: MmioPort) {}

  read8(gpa: number): number {
    return this.port.read(gpa, 1) & 0xff;
  }
  read16(gpa: number): number {
    return this.port.read(gpa, 2) & 0xffff;
  }
  read32(gpa: number): number {
    return this.port.read(gpa, 4) >>> 0;
  }
  write8(gpa: number, value: number): void {
    this.port.write(gpa, 1, value & 0xff);
  }
  write16(gpa: number, value: number): void {
    this.port.write(gpa, 2, value & 0xffff);
  }
  write32(gpa: number, value: number): void {
    this.port.write(gpa, 4, value >>> 0);
  }
  /** A 64-bit register as two 32-bit accesses, low word first (virtio-mmio's split registers). */
  write64(gpaLo: number, gpaHi: number, value: number): void {
    this.write32(gpaLo, value >>> 0);
    this.write32(gpaHi, Math.floor(value / 2 ** 32) >>> 0);
  }
  read(gpa: number, size: MmioSize): number {
    return this.port.read(gpa, size);
  }
  write(gpa: number, size: MmioSize, value: number): void {
    this.port.write(gpa, size, value);
  }
}

/** What guest code receives: its view of the machine. The same object shape in both modes. */
export interface GuestRuntime {
  readonly cpu: number;
  readonly cpuCount: number;
  readonly mode: VcpuMode;
  /** Guest-physical memory (in a worker: the same SharedArrayBuffers, rebuilt from descriptors). */
  readonly memory: GuestMemory;
  /** Pages of this vCPU's own slice of guest RAM, for rings, tables and buffers. */
  readonly allocator: BitmapPageAllocator;
  readonly mmio: GuestMmio;
  /** The firmware's device description. */
  readonly devices: readonly DeviceNode[];
  /** Whatever the host passed as `guest.args` (structured-cloned). */
  readonly args: unknown;
  /** Waits until interrupt `line` is raised and consumes it; false on timeout. */
  waitForInterrupt(line: number, timeoutMs?: number): Promise<boolean>;
  /** Takes a pending interrupt without waiting. */
  takeInterrupt(line: number): boolean;
  /**
   * A synchronous wait for drivers that poll a used ring after a posted notification (the
   * virtio-iommu driver's `wait`): blocks on `line` in a worker vCPU; `undefined` inline,
   * where a device completes during the notification itself.
   */
  completionWait(line: number, timeoutMs?: number): (() => void) | undefined;
  /** Probes every `virtio,mmio` window over MMIO; keeps those with a device behind them. */
  findVirtioDevices(deviceId?: number): VirtioMmioProbe[];
  /** Devices by `compatible` string. */
  findDevices(compatible: string): DeviceNode[];
  /** Applies memory hot-plug changes the host posted (also done after every exit and interrupt). */
  syncMemory(): void;
  log(message: string): void;
}

export interface RuntimeParts {
  cpu: number;
  cpuCount: number;
  mode: VcpuMode;
  memory: GuestMemory;
  allocator: BitmapPageAllocator;
  port: MmioPort;
  devices: readonly DeviceNode[];
  args: unknown;
  interrupts: {
    count: number;
    take(line: number): boolean;
    wait(line: number, timeoutMs: number): Promise<boolean>;
    /** Blocking wait; only where the vCPU owns its thread. */
    waitBlocking?(line: number, timeoutMs: number): boolean;
  };
  syncMemory(): void;
  log(message: string): void;
}

export function createGuestRuntime(parts: RuntimeParts): GuestRuntime {
  const mmio = new GuestMmio(parts.port);
  const checkLine = (line: number) => {
    if (!Number.isInteger(line) || line < 0 || line >= parts.interrupts.count) {
      throw new VmmError(
        'EINVAL',
        `interrupt line ${String(line)} does not exist (0..${parts.interrupts.count - 1})`,
      );
    }
  };
  return {
    cpu: parts.cpu,
    cpuCount: parts.cpuCount,
    mode: parts.mode,
    memory: parts.memory,
    allocator: parts.allocator,
    mmio,
    devices: parts.devices,
    args: parts.args,
    async waitForInterrupt(line, timeoutMs = Number.POSITIVE_INFINITY) {
      checkLine(line);
      const got = await parts.interrupts.wait(line, timeoutMs);
      parts.syncMemory();
      return got;
    },
    takeInterrupt(line) {
      checkLine(line);
      return parts.interrupts.take(line);
    },
    completionWait(line, timeoutMs = 1000) {
      checkLine(line);
      const blocking = parts.interrupts.waitBlocking;
      if (blocking === undefined) return undefined;
      return () => {
        blocking(line, timeoutMs);
        parts.syncMemory();
      };
    },
    findVirtioDevices(deviceId) {
      const found: VirtioMmioProbe[] = [];
      for (const node of parts.devices) {
        if (node.compatible !== 'virtio,mmio') continue;
        // virtio 1.2 §4.2.3.1.1: the driver checks MagicValue and Version before anything else,
        // and DeviceID 0 marks a placeholder window with no device behind it.
        if (mmio.read32(node.base) !== VIRTIO_MMIO_MAGIC) continue;
        const version = mmio.read32(node.base + 0x004);
        const id = mmio.read32(node.base + 0x008);
        if (id === 0 || (deviceId !== undefined && id !== deviceId)) continue;
        found.push({ node, version, deviceId: id, vendorId: mmio.read32(node.base + 0x00c) });
      }
      return found;
    },
    findDevices(compatible) {
      return parts.devices.filter((d) => d.compatible === compatible);
    },
    syncMemory: parts.syncMemory,
    log: parts.log,
  };
}

/** The function a guest program exports (default export, or the name given in `guest.export`). */
export type GuestMain = (runtime: GuestRuntime) => unknown;

/** Loads the guest program's entry function from its module. */
export async function loadGuestMain(moduleUrl: string, exportName = 'default'): Promise<GuestMain> {
  const mod = (await import(moduleUrl)) as Record<string, unknown>;
  const main = mod[exportName];
  if (typeof main !== 'function') {
    const names = Object.keys(mod).join(', ') || 'none';
    throw new VmmError(
      'ENOENT',
      `guest module ${moduleUrl} has no function export '${exportName}' (exports: ${names})`,
    );
  }
  return main as GuestMain;
}
