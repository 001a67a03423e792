import { TypedEmitter } from '../events.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DeviceQueue } from './device-queue.js';
import { ActiveQueues } from './mmio-active-queues.js';
import { FeatureRegisters } from './mmio-feature-registers.js';
import { QueueRegisterFile } from './mmio-queue-registers.js';
import {
  VirtioMmioReg as Reg,
  VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_VERSION,
  VirtioMmioInterrupt,
} from './mmio-registers.js';
import {
  configAccessOk,
  createDeviceQueues,
  DRIVER_BITS,
  transportFeaturesProblem,
  UNSUPPORTED_FEATURES,
  type VirtioMmioTransportEvents,
  type VirtioMmioTransportOptions,
} from './mmio-transport-defs.js';
import {
  DeviceStatus,
  featureBit,
  type InterruptLine,
  type MmioHandler,
  type VirtioActivation,
  type VirtioDevice,
  VirtioFeature,
} from './types.js';

export type { VirtioMmioTransportEvents, VirtioMmioTransportOptions } from './mmio-transport-defs.js';

/**
 * The virtio-mmio version 2 register file (virtio 1.2 §4.2.2) in front of a `VirtioDevice`.
 *
 * Every register access comes from the guest and is hostile: `read` and `write` never throw,
 * unknown or misaligned accesses read 0 and are ignored, and a device callback that throws is
 * contained and turned into DEVICE_NEEDS_RESET.
 */
export class VirtioMmioTransport extends TypedEmitter<VirtioMmioTransportEvents> implements MmioHandler {
  readonly name: string;
  readonly size: number;
  readonly device: VirtioDevice<DeviceQueue>;
  private readonly memory: GuestMemory;
  private readonly interrupt: InterruptLine;
  /** Features offered to the driver: the device's plus VERSION_1, minus what this transport lacks. */
  readonly offeredFeatures: bigint;
  private readonly featureRegs: FeatureRegisters;
  private readonly queueRegs: QueueRegisterFile;
  private statusReg = 0;
  private negotiated = 0n;
  private interruptStatusReg = 0;
  private generation = 0;
  /** Bumped on reset, so callbacks of an earlier activation are ignored. */
  private epoch = 0;
  private readonly active: ActiveQueues;

  constructor(device: VirtioDevice<DeviceQueue>, options: VirtioMmioTransportOptions) {
    super();
    this.device = device;
    this.name = `virtio-mmio:${device.name}`;
    this.memory = options.memory;
    this.interrupt = options.interrupt;
    this.size = Math.max(0x200, Math.ceil((Reg.CONFIG + device.configSize) / 0x100) * 0x100);
    this.offeredFeatures =
      (device.deviceFeatures | featureBit(VirtioFeature.VERSION_1)) & ~UNSUPPORTED_FEATURES;
    this.featureRegs = new FeatureRegisters(this.offeredFeatures);
    this.queueRegs = new QueueRegisterFile(device);
    this.active = new ActiveQueues(device, (error) => this.deviceFailed(error));
  }

  /** The Status register. */
  get status(): number {
    return this.statusReg;
  }

  /** The InterruptStatus register. */
  get interruptStatus(): number {
    return this.interruptStatusReg;
  }

  /** Features accepted with FEATURES_OK (0 before). */
  get features(): bigint {
    return this.negotiated;
  }

  /** The queues handed to the device at DRIVER_OK (empty before). */
  get activeQueues(): readonly (DeviceQueue | undefined)[] {
    return this.active.list;
  }

  read(offset: number, size: 1 | 2 | 4 | 8): number {
    if (!Number.isInteger(offset) || offset < 0 || offset >= this.size) return 0;
    if (offset >= Reg.CONFIG) return this.readConfig(offset - Reg.CONFIG, size);
    // virtio 1.2 §4.2.2.2: control registers take aligned 32-bit accesses only.
    if (size !== 4 || offset % 4 !== 0) return 0;
    switch (offset) {
      case Reg.MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
      case Reg.VERSION:
        return VIRTIO_MMIO_VERSION;
      case Reg.DEVICE_ID:
        return this.device.deviceId >>> 0;
      case Reg.VENDOR_ID:
        return this.device.vendorId >>> 0;
      case Reg.DEVICE_FEATURES:
        return this.featureRegs.readDeviceFeatures();
      case Reg.QUEUE_NUM_MAX:
        return this.queueRegs.readNumMax();
      case Reg.QUEUE_READY:
        return this.queueRegs.readReady();
      case Reg.INTERRUPT_STATUS:
        return this.interruptStatusReg;
      case Reg.STATUS:
        return this.statusReg;
      case Reg.SHM_LEN_LOW:
      case Reg.SHM_LEN_HIGH:
      case Reg.SHM_BASE_LOW:
      case Reg.SHM_BASE_HIGH:
        // No shared memory regions: length and base read as all ones (virtio 1.2 §4.2.2).
        return 0xffffffff;
      case Reg.CONFIG_GENERATION:
        return this.generation;
      default:
        return 0;
    }
  }

  write(offset: number, size: 1 | 2 | 4 | 8, value: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset >= this.size) return;
    const v = Number.isFinite(value) ? value >>> 0 : 0;
    if (offset >= Reg.CONFIG) {
      this.writeConfig(offset - Reg.CONFIG, size, v);
      return;
    }
    if (size !== 4 || offset % 4 !== 0) return;
    switch (offset) {
      case Reg.DEVICE_FEATURES_SEL:
        this.featureRegs.deviceSel = v;
        return;
      case Reg.DRIVER_FEATURES:
        this.featureRegs.writeDriverFeatures(this.statusReg, v);
        return;
      case Reg.DRIVER_FEATURES_SEL:
        this.featureRegs.driverSel = v;
        return;
      case Reg.QUEUE_SEL:
        this.queueRegs.selected = v;
        return;
      case Reg.QUEUE_NUM:
        this.queueRegs.writeNum(this.statusReg, v);
        return;
      case Reg.QUEUE_READY: {
        const problem = this.queueRegs.writeReady(this.statusReg, v, this.memory);
        if (problem !== null) this.emit('queueRefused', this.queueRegs.selected, problem);
        return;
      }
      case Reg.QUEUE_NOTIFY:
        this.queueNotify(v);
        return;
      case Reg.INTERRUPT_ACK:
        this.interruptStatusReg &= ~v;
        if (this.interruptStatusReg === 0) this.interrupt.lower?.();
        return;
      case Reg.STATUS:
        this.writeStatus(v);
        return;
      case Reg.QUEUE_DESC_LOW:
      case Reg.QUEUE_DESC_HIGH:
      case Reg.QUEUE_DRIVER_LOW:
      case Reg.QUEUE_DRIVER_HIGH:
      case Reg.QUEUE_DEVICE_LOW:
      case Reg.QUEUE_DEVICE_HIGH:
        this.queueRegs.writeAddress(this.statusReg, offset, v);
        return;
      default:
        return;
    }
  }

  /**
   * The device changed its configuration space: bump ConfigGeneration and, once the driver is
   * running, send a configuration change notification (virtio 1.2 §2.5.1, §4.2.2).
   */
  configChanged(): void {
    this.generation = (this.generation + 1) >>> 0;
    if ((this.statusReg & DeviceStatus.DRIVER_OK) !== 0) this.signal(VirtioMmioInterrupt.CONFIG_CHANGE);
  }

  /** Puts the device in DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2). */
  needsReset(reason: string): void {
    if ((this.statusReg & DeviceStatus.DEVICE_NEEDS_RESET) !== 0) return;
    this.statusReg |= DeviceStatus.DEVICE_NEEDS_RESET;
    this.emit('needsReset', reason);
    // virtio 1.2 §2.1.2: with DRIVER_OK set, the device sends a configuration change notification.
    if ((this.statusReg & DeviceStatus.DRIVER_OK) !== 0) this.signal(VirtioMmioInterrupt.CONFIG_CHANGE);
  }

  private signal(bits: number): void {
    this.interruptStatusReg |= bits;
    this.interrupt.raise();
  }

  private readConfig(offset: number, size: number): number {
    if (!configAccessOk(offset, size, this.device.configSize)) return 0;
    try {
      return this.device.readConfig(offset, size as 1 | 2 | 4) >>> 0;
    } catch (error) {
      this.deviceFailed(error);
      return 0;
    }
  }

  private writeConfig(offset: number, size: number, value: number): void {
    if (!configAccessOk(offset, size, this.device.configSize)) return;
    try {
      this.device.writeConfig(
        offset,
        size as 1 | 2 | 4,
        size === 4 ? value : value & ((1 << (8 * size)) - 1),
      );
    } catch (error) {
      this.deviceFailed(error);
    }
  }

  private queueNotify(index: number): void {
    // virtio 1.2 §2.1.2 / §3.1: notifications only mean something once the device is live.
    if ((this.statusReg & DeviceStatus.DRIVER_OK) === 0) return;
    if ((this.statusReg & DeviceStatus.DEVICE_NEEDS_RESET) !== 0) return;
    this.active.notify(index);
  }

  startPolling(): void {
    this.active.startPolling();
  }

  /**
   * One turn of a polling host: runs the device for every watched queue with buffers
   * available (notifications held off, so the driver did not notify). Returns the chains the
   * device took.
   */
  poll(): number {
    return this.live() ? this.active.poll() : 0;
  }

  /**
   * The host stops polling: notifications go back to what the device asks, then each watched
   * queue is looked at once more, since a buffer made available before that raised no
   * notification (virtio 1.2 §2.7.10). Returns the chains the device took.
   */
  stopPolling(): number {
    return this.active.stopPolling(this.live());
  }

  /** virtio 1.2 §2.1.2 / §3.1: the device runs only between DRIVER_OK and a reset or NEEDS_RESET. */
  private live(): boolean {
    return (
      (this.statusReg & (DeviceStatus.DRIVER_OK | DeviceStatus.DEVICE_NEEDS_RESET)) === DeviceStatus.DRIVER_OK
    );
  }

  private writeStatus(value: number): void {
    if ((value & 0xff) === 0) {
      this.reset();
      return;
    }
    const before = this.statusReg;
    // virtio 1.2 §2.1.1: the driver never clears bits (only a reset does) and never sets
    // DEVICE_NEEDS_RESET; bits it tries to clear stay set.
    const added = value & DRIVER_BITS & ~before;
    if ((added & DeviceStatus.ACKNOWLEDGE) !== 0) this.statusReg |= DeviceStatus.ACKNOWLEDGE;
    // virtio 1.2 §3.1.1: DRIVER follows ACKNOWLEDGE.
    if ((added & DeviceStatus.DRIVER) !== 0 && (this.statusReg & DeviceStatus.ACKNOWLEDGE) !== 0) {
      this.statusReg |= DeviceStatus.DRIVER;
    }
    if ((added & DeviceStatus.FEATURES_OK) !== 0) this.tryFeaturesOk();
    if ((added & DeviceStatus.DRIVER_OK) !== 0) this.tryDriverOk();
    if ((added & DeviceStatus.FAILED) !== 0) this.statusReg |= DeviceStatus.FAILED;
    if (this.statusReg !== before || added !== 0) this.emit('status', this.statusReg);
  }

  private tryFeaturesOk(): void {
    const features = this.featureRegs.driverFeatures();
    const problem = this.featuresProblem(features);
    if (problem !== null) {
      // virtio 1.2 §2.2.2 / §3.1.1: refused features leave FEATURES_OK clear for the driver to see.
      this.emit('featuresRefused', features, problem);
      return;
    }
    this.negotiated = features;
    this.statusReg |= DeviceStatus.FEATURES_OK;
  }

  private featuresProblem(features: bigint): string | null {
    const problem = transportFeaturesProblem(features, this.statusReg, this.offeredFeatures);
    if (problem !== null) return problem;
    try {
      if (this.device.acceptFeatures?.(features) === false)
        return 'the device refused the feature combination';
    } catch (error) {
      this.deviceFailed(error);
      return 'the device failed while checking the features';
    }
    return null;
  }

  private tryDriverOk(): void {
    if ((this.statusReg & DeviceStatus.DEVICE_NEEDS_RESET) !== 0) return;
    if ((this.statusReg & DeviceStatus.FEATURES_OK) === 0) {
      // virtio 1.2 §3.1.1: DRIVER_OK comes after FEATURES_OK; a device that cannot run without a
      // negotiated feature set is in an error state only a reset leaves.
      this.needsReset('DRIVER_OK before FEATURES_OK');
      return;
    }
    const epoch = this.epoch;
    const features = this.negotiated;
    let queues: (DeviceQueue | undefined)[];
    try {
      queues = createDeviceQueues(this.queueRegs.queues, this.memory, features, (index, reason) => {
        if (this.epoch === epoch) this.needsReset(`queue ${index}: ${reason}`);
      });
    } catch (error) {
      // A ring bank was unplugged between QueueReady and DRIVER_OK.
      this.needsReset(`queue memory vanished before DRIVER_OK: ${String(error)}`);
      return;
    }
    this.active.list = queues;
    this.statusReg |= DeviceStatus.DRIVER_OK;
    const activation: VirtioActivation<DeviceQueue> = {
      memory: this.memory,
      queues,
      features,
      notifyUsed: () => {
        // virtio 1.2 §2.1.2: no notifications before DRIVER_OK (or after a reset).
        if (this.epoch === epoch && (this.statusReg & DeviceStatus.DRIVER_OK) !== 0) {
          this.signal(VirtioMmioInterrupt.USED_BUFFER);
        }
      },
      needsReset: (reason) => {
        if (this.epoch === epoch) this.needsReset(reason);
      },
      configChanged: () => {
        if (this.epoch === epoch) this.configChanged();
      },
    };
    try {
      this.device.activate(activation);
    } catch (error) {
      this.deviceFailed(error);
      return;
    }
    this.emit('activated', features);
  }

  private deviceFailed(error: unknown): void {
    this.emit('deviceError', error);
    this.needsReset(
      `device ${this.device.name} failed: ${error instanceof Error ? error.message : String(error)}`,
    );
  }

  /** virtio 1.2 §4.2.2.1: writing 0 to Status resets the device and every register. */
  private reset(): void {
    this.epoch++;
    this.active.dispose();
    this.queueRegs.clear();
    this.statusReg = 0;
    this.featureRegs.clear();
    this.negotiated = 0n;
    const hadInterrupt = this.interruptStatusReg !== 0;
    this.interruptStatusReg = 0;
    if (hadInterrupt) this.interrupt.lower?.();
    try {
      this.device.reset();
    } catch (error) {
      this.emit('deviceError', error);
    }
    this.emit('reset');
    this.emit('status', 0);
  }
}
