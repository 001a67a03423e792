import { hex, VmmError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { PageAllocator } from '../memory/page-allocator.js';
import { DriverQueue } from './driver-queue.js';
import { isValidQueueSize, splitQueueBytes, splitQueueLayout } from './layout.js';
import { VirtioMmioReg as Reg, VIRTIO_MMIO_MAGIC, VIRTIO_MMIO_VERSION } from './mmio-registers.js';
import { DeviceStatus, featureBit, type MmioAccessor, VirtioFeature } from './types.js';

export interface VirtioMmioInitOptions {
  /** Features the driver can use; VERSION_1 is always asked for. */
  wanted: bigint;
  /** Size of each queue to set up, queue 0 first (powers of two, at most QueueNumMax). */
  queueSizes: readonly number[];
}

export interface VirtioMmioInitResult {
  /** Features negotiated (offered ∩ wanted). */
  features: bigint;
  queues: DriverQueue[];
}

/** How often a torn 64-bit config read is retried before giving up. */
const MAX_CONFIG_RETRIES = 1000;
/** How often Status is re-read after a reset before giving up. */
const MAX_RESET_POLLS = 1000;

/**
 * Guest-side virtio-mmio v2 driver core (Linux's virtio_mmio.c in spirit): probing, the
 * initialisation sequence of virtio 1.2 §3.1.1, queue setup in guest RAM, notifications,
 * interrupts and configuration reads.
 */
export class VirtioMmioDriver {
  private rings: number[] = [];

  constructor(
    readonly mmio: MmioAccessor,
    readonly base: number,
    readonly memory: GuestMemory,
    readonly allocator: PageAllocator,
  ) {}

  private reg(offset: number): number {
    return this.mmio.read32(this.base + offset) >>> 0;
  }

  private setReg(offset: number, value: number): void {
    this.mmio.write32(this.base + offset, value >>> 0);
  }

  /** The device ID when a v2 device sits at `base`; `null` for no device, legacy or a placeholder. */
  probe(): number | null {
    if (this.reg(Reg.MAGIC_VALUE) !== VIRTIO_MMIO_MAGIC) return null;
    if (this.reg(Reg.VERSION) !== VIRTIO_MMIO_VERSION) return null;
    // virtio 1.2 §4.2.3.1.1: device ID 0 is a placeholder the driver must ignore.
    const id = this.reg(Reg.DEVICE_ID);
    return id === 0 ? null : id;
  }

  /** The Status register. */
  status(): number {
    return this.reg(Reg.STATUS);
  }

  /** Resets the device (Status 0) and waits until it reads back 0. */
  reset(): void {
    this.setReg(Reg.STATUS, 0);
    for (let i = 0; i < MAX_RESET_POLLS; i++) {
      if (this.reg(Reg.STATUS) === 0) {
        this.freeRings();
        return;
      }
    }
    throw new VmmError('EBUSY', `virtio-mmio device at ${hex(this.base)} does not finish its reset`);
  }

  /**
   * The initialisation sequence of virtio 1.2 §3.1.1: reset, ACKNOWLEDGE, DRIVER, feature
   * negotiation, FEATURES_OK (checked to stick), queue setup, DRIVER_OK. On failure the device
   * is marked FAILED, the rings are freed and a `VmmError` says what went wrong.
   */
  initialize(options: VirtioMmioInitOptions): VirtioMmioInitResult {
    const { wanted, queueSizes } = options;
    for (const size of queueSizes) {
      if (!isValidQueueSize(size)) {
        throw new VmmError('EINVAL', `queue size ${String(size)} must be a power of two from 1 to 32768`);
      }
    }
    if (this.probe() === null) {
      throw new VmmError('ENOENT', `no virtio-mmio version 2 device at ${hex(this.base)}`);
    }
    this.reset();
    this.setReg(Reg.STATUS, DeviceStatus.ACKNOWLEDGE);
    this.setReg(Reg.STATUS, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
    try {
      const features = this.negotiate(wanted);
      const queues = queueSizes.map((size, index) => this.setupQueue(index, size, features));
      this.setReg(Reg.STATUS, this.status() | DeviceStatus.DRIVER_OK);
      const status = this.status();
      if ((status & DeviceStatus.DRIVER_OK) === 0 || (status & DeviceStatus.DEVICE_NEEDS_RESET) !== 0) {
        throw new VmmError(
          'EINVAL',
          `device at ${hex(this.base)} did not accept DRIVER_OK (status ${hex(status)})`,
        );
      }
      return { features, queues };
    } catch (error) {
      this.setReg(Reg.STATUS, this.status() | DeviceStatus.FAILED);
      this.freeRings();
      throw error;
    }
  }

  private negotiate(wanted: bigint): bigint {
    this.setReg(Reg.DEVICE_FEATURES_SEL, 0);
    const low = this.reg(Reg.DEVICE_FEATURES);
    this.setReg(Reg.DEVICE_FEATURES_SEL, 1);
    const high = this.reg(Reg.DEVICE_FEATURES);
    const offered = (BigInt(high) << 32n) | BigInt(low);
    const version1 = featureBit(VirtioFeature.VERSION_1);
    if ((offered & version1) === 0n) {
      throw new VmmError(
        'ENOSYS',
        `device at ${hex(this.base)} does not offer VERSION_1 (legacy devices are not supported)`,
      );
    }
    const features = offered & (wanted | version1);
    this.setReg(Reg.DRIVER_FEATURES_SEL, 0);
    this.setReg(Reg.DRIVER_FEATURES, Number(features & 0xffffffffn));
    this.setReg(Reg.DRIVER_FEATURES_SEL, 1);
    this.setReg(Reg.DRIVER_FEATURES, Number(features >> 32n));
    this.setReg(Reg.STATUS, this.status() | DeviceStatus.FEATURES_OK);
    // virtio 1.2 §3.1.1 step 6: re-read Status; FEATURES_OK clear means the features were refused.
    if ((this.status() & DeviceStatus.FEATURES_OK) === 0) {
      throw new VmmError(
        'EINVAL',
        `device at ${hex(this.base)} refused features 0x${features.toString(16)} (FEATURES_OK did not stick)`,
        { features },
      );
    }
    return features;
  }

  private setupQueue(index: number, size: number, features: bigint): DriverQueue {
    this.setReg(Reg.QUEUE_SEL, index);
    // virtio 1.2 §4.2.3.2: the queue must not be in use yet.
    if (this.reg(Reg.QUEUE_READY) !== 0) {
      throw new VmmError('EBUSY', `queue ${index} of the device at ${hex(this.base)} is already ready`);
    }
    const max = this.reg(Reg.QUEUE_NUM_MAX);
    if (max === 0)
      throw new VmmError('ENOENT', `queue ${index} does not exist on the device at ${hex(this.base)}`);
    if (size > max) {
      throw new VmmError('EINVAL', `queue ${index}: size ${size} exceeds QueueNumMax ${max}`, { size, max });
    }
    const gpa = this.allocator.alloc(splitQueueBytes(size));
    this.rings.push(gpa);
    const layout = splitQueueLayout(gpa, size);
    const queue = new DriverQueue(
      this.memory,
      layout,
      {
        eventIdx: (features & featureBit(VirtioFeature.EVENT_IDX)) !== 0n,
        indirect: (features & featureBit(VirtioFeature.INDIRECT_DESC)) !== 0n,
      },
      { allocator: this.allocator },
    );
    this.setReg(Reg.QUEUE_NUM, size);
    this.writeAddress(Reg.QUEUE_DESC_LOW, layout.descTable);
    this.writeAddress(Reg.QUEUE_DRIVER_LOW, layout.availRing);
    this.writeAddress(Reg.QUEUE_DEVICE_LOW, layout.usedRing);
    this.setReg(Reg.QUEUE_READY, 1);
    if (this.reg(Reg.QUEUE_READY) !== 1) {
      throw new VmmError(
        'EINVAL',
        `queue ${index} of the device at ${hex(this.base)} was not accepted (QueueReady reads 0)`,
      );
    }
    return queue;
  }

  private writeAddress(lowOffset: number, gpa: number): void {
    this.setReg(lowOffset, gpa % 0x100000000);
    this.setReg(lowOffset + 4, Math.floor(gpa / 0x100000000));
  }

  private freeRings(): void {
    for (const gpa of this.rings) this.allocator.free(gpa);
    this.rings = [];
  }

  /** Kicks queue `queueIndex` (QueueNotify). */
  notify(queueIndex: number): void {
    this.setReg(Reg.QUEUE_NOTIFY, queueIndex);
  }

  interruptStatus(): number {
    return this.reg(Reg.INTERRUPT_STATUS);
  }

  ackInterrupt(bits: number): void {
    this.setReg(Reg.INTERRUPT_ACK, bits);
  }

  configGeneration(): number {
    return this.reg(Reg.CONFIG_GENERATION);
  }

  readConfig8(offset: number): number {
    return this.mmio.read8(this.base + Reg.CONFIG + offset) & 0xff;
  }

  readConfig16(offset: number): number {
    const gpa = this.base + Reg.CONFIG + offset;
    if (this.mmio.read16 !== undefined) return this.mmio.read16(gpa) & 0xffff;
    // Without 16-bit accessors: two byte reads, retried until ConfigGeneration is stable.
    return this.stable(() => (this.mmio.read8(gpa) & 0xff) | ((this.mmio.read8(gpa + 1) & 0xff) << 8));
  }

  readConfig32(offset: number): number {
    return this.mmio.read32(this.base + Reg.CONFIG + offset) >>> 0;
  }

  /** A 64-bit field read as two 32-bit halves until ConfigGeneration is unchanged (virtio 1.2 §2.5.1). */
  readConfig64(offset: number): bigint {
    return this.stable(() => {
      const low = this.readConfig32(offset);
      const high = this.readConfig32(offset + 4);
      return (BigInt(high) << 32n) | BigInt(low);
    });
  }

  writeConfig8(offset: number, value: number): void {
    this.mmio.write8(this.base + Reg.CONFIG + offset, value & 0xff);
  }

  writeConfig32(offset: number, value: number): void {
    this.mmio.write32(this.base + Reg.CONFIG + offset, value >>> 0);
  }

  private stable<T>(read: () => T): T {
    for (let i = 0; i < MAX_CONFIG_RETRIES; i++) {
      const before = this.configGeneration();
      const value = read();
      if (this.configGeneration() === before) return value;
    }
    throw new VmmError('EBUSY', `configuration of the device at ${hex(this.base)} keeps changing while read`);
  }
}
