/**
 * A scripted virtio-iommu for driver unit tests: the configuration space and features of a real
 * device, but every request is answered by a test-supplied function and event buffers are filled
 * on demand, so tests can produce answers the real device never gives (statuses it would not
 * return, used length 0, malformed fault reports). Wired to the driver through core's
 * virtio-mmio transport and an in-memory MMIO bus.
 */
import {
  type DeviceQueue,
  featureBit,
  type VirtioActivation,
  type VirtioDevice,
  VirtioFeature,
  VirtioMmioTransport,
} from '@vmmkit/core';
import { createMmioBus, createTestMemory, type TestMemory, type TestMmioBus } from '@vmmkit/core/testing';
import { CONFIG_SIZE, ConfigOffset, IommuFeature, VIRTIO_IOMMU_DEVICE_ID } from '../../protocol/constants.js';
import { U64_MAX } from '../../protocol/u64.js';
import { VirtioIommuDriver } from '../driver.js';
import type { VirtioIommuDriverOptions } from '../driver-options.js';

/** What a scripted request handler answers: a status in the tail, or raw used bytes. */
export interface ScriptedAnswer {
  /** Status written to the last 4 bytes of the writable part (default S_OK). */
  status?: number;
  /** Bytes written at the start of the writable part (PROBE properties). */
  written?: Uint8Array;
  /** Used length reported; default the whole writable part. 0 = returned unwritten. */
  usedLength?: number;
}

export interface ScriptedIommuOptions {
  features?: readonly number[];
  pageSizeMask?: bigint;
  inputRange?: { start: bigint; end: bigint };
  domainRange?: { start: number; end: number };
  probeSize?: number;
  bypass?: number;
  queueSize?: number;
  /** Whether the device answers requests when notified (false: it never answers). */
  answers?: boolean;
}

export const MMIO_BASE = 0x1000_0000;

const DEFAULT_FEATURES = [
  IommuFeature.INPUT_RANGE,
  IommuFeature.DOMAIN_RANGE,
  IommuFeature.MAP_UNMAP,
  IommuFeature.PROBE,
  IommuFeature.MMIO,
  IommuFeature.BYPASS_CONFIG,
  IommuFeature.ATTACH_TABLE,
];

export class ScriptedIommu implements VirtioDevice<DeviceQueue> {
  readonly name = 'scripted-iommu';
  readonly deviceId = VIRTIO_IOMMU_DEVICE_ID;
  readonly vendorId = 0x1af4;
  readonly queueMaxSizes: readonly number[];
  readonly deviceFeatures: bigint;
  readonly configSize = CONFIG_SIZE;
  readonly config = new DataView(new ArrayBuffer(CONFIG_SIZE));
  /** Requests received, readable bytes each. */
  readonly requests: Uint8Array[] = [];
  /** Queue index of every notification. */
  readonly notifications: number[] = [];
  readonly configWrites: { offset: number; value: number }[] = [];
  handler: (request: Uint8Array, writableLength: number) => ScriptedAnswer = () => ({});
  answers: boolean;
  private activation: VirtioActivation<DeviceQueue> | null = null;

  constructor(options: ScriptedIommuOptions = {}) {
    this.queueMaxSizes = [options.queueSize ?? 256, options.queueSize ?? 256];
    this.answers = options.answers ?? true;
    let features = featureBit(VirtioFeature.VERSION_1) | featureBit(VirtioFeature.EVENT_IDX);
    for (const bit of options.features ?? DEFAULT_FEATURES) features |= featureBit(bit);
    this.deviceFeatures = features;
    const c = this.config;
    c.setBigUint64(ConfigOffset.PAGE_SIZE_MASK, options.pageSizeMask ?? 0xffff_ffff_ffff_f000n, true);
    c.setBigUint64(ConfigOffset.INPUT_START, options.inputRange?.start ?? 0n, true);
    c.setBigUint64(ConfigOffset.INPUT_END, options.inputRange?.end ?? U64_MAX, true);
    c.setUint32(ConfigOffset.DOMAIN_START, options.domainRange?.start ?? 0, true);
    c.setUint32(ConfigOffset.DOMAIN_END, options.domainRange?.end ?? 0xffff_ffff, true);
    c.setUint32(ConfigOffset.PROBE_SIZE, options.probeSize ?? 64, true);
    c.setUint8(ConfigOffset.BYPASS, options.bypass ?? 1);
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    if (size === 1) return this.config.getUint8(offset);
    if (size === 2) return this.config.getUint16(offset, true);
    return this.config.getUint32(offset, true);
  }

  writeConfig(offset: number, _size: 1 | 2 | 4, value: number): void {
    this.configWrites.push({ offset, value });
    if (offset === ConfigOffset.BYPASS) this.config.setUint8(offset, value);
  }

  activate(activation: VirtioActivation<DeviceQueue>): void {
    this.activation = activation;
  }

  reset(): void {
    this.activation = null;
  }

  notify(queueIndex: number): void {
    this.notifications.push(queueIndex);
    const queue = this.activation?.queues[queueIndex];
    if (queueIndex !== 0 || queue === undefined || !this.answers) return;
    for (let r = queue.pop(); r !== null; r = queue.pop()) {
      if (!r.ok) {
        queue.pushUsed(r.head, 0);
        continue;
      }
      const chain = r.chain;
      const readable = new Uint8Array(chain.readableLength);
      chain.readInto(readable);
      this.requests.push(readable);
      const answer = this.handler(readable, chain.writableLength);
      const out = new Uint8Array(chain.writableLength);
      if (answer.written) out.set(answer.written.subarray(0, Math.max(0, out.length - 4)));
      if (out.length >= 4) out[out.length - 4] = answer.status ?? 0;
      const used = answer.usedLength ?? out.length;
      if (used > 0) chain.writeFrom(out.subarray(0, used));
      queue.pushUsed(chain.head, used);
    }
    if (queue.needsInterrupt()) this.activation!.notifyUsed(0);
  }

  /** Enters DEVICE_NEEDS_RESET, as a device that found the driver's queues broken. */
  needsReset(reason: string): void {
    this.activation?.needsReset(reason);
  }

  /** Fills the next posted event buffer with `bytes` and returns it with `usedLength`; false when none is posted. */
  sendEvent(bytes: Uint8Array, usedLength = bytes.length): boolean {
    const queue = this.activation?.queues[1];
    if (queue === undefined) return false;
    const r = queue.pop();
    if (r === null) return false;
    if (!r.ok) {
      queue.pushUsed(r.head, 0);
      return false;
    }
    r.chain.writeFrom(bytes.subarray(0, Math.min(bytes.length, r.chain.writableLength)));
    queue.pushUsed(r.chain.head, usedLength);
    if (queue.needsInterrupt()) this.activation!.notifyUsed(1);
    return true;
  }
}

export interface ScriptedSetup extends TestMemory {
  device: ScriptedIommu;
  transport: VirtioMmioTransport;
  bus: TestMmioBus;
  interrupts: { raised: number };
}

/** Memory, MMIO bus and transport around a scripted device at `MMIO_BASE`. */
export function createScriptedIommu(options: ScriptedIommuOptions = {}): ScriptedSetup {
  const mem = createTestMemory({ size: 0x40_0000 });
  const device = new ScriptedIommu(options);
  const interrupts = { raised: 0 };
  const transport = new VirtioMmioTransport(device, {
    memory: mem.memory,
    interrupt: {
      raise: () => {
        interrupts.raised++;
      },
    },
  });
  const bus = createMmioBus();
  bus.map(MMIO_BASE, transport);
  return { ...mem, device, transport, bus, interrupts };
}

/**
 * A scripted device with the guest driver on it: a 16-entry request queue and a 4-buffer event
 * queue unless `driverOptions` says otherwise.
 */
export function createScriptedDriver(
  options: ScriptedIommuOptions = {},
  driverOptions: Partial<Omit<VirtioIommuDriverOptions, 'mmio' | 'base' | 'memory' | 'allocator'>> = {},
): ScriptedSetup & { driver: VirtioIommuDriver } {
  const s = createScriptedIommu(options);
  const driver = new VirtioIommuDriver({
    mmio: s.bus,
    base: MMIO_BASE,
    memory: s.memory,
    allocator: s.allocator,
    requestQueueSize: 16,
    eventQueueSize: 4,
    ...driverOptions,
  });
  return { ...s, driver };
}
