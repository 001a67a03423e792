/**
 * Feature negotiation and configuration reading as the Linux driver does them
 * (drivers/iommu/virtio-iommu.c `viommu_probe`), plus the nested extension bit.
 */
import {
  type DriverQueue,
  featureBit,
  hex,
  type MmioAccessor,
  VirtioFeature,
  type VirtioMmioDriver,
  VirtioMmioReg,
  VmmError,
} from '@vmmkit/core';
import {
  ConfigOffset,
  EventQueue,
  IommuFeature,
  RequestQueue,
  VIRTIO_IOMMU_DEVICE_ID,
} from '../protocol/constants.js';
import { U64_MAX } from '../protocol/u64.js';
import type { VirtioIommuDriverOptions } from './driver-options.js';

/** What the driver asks for: Linux's list, the ring features its virtio core uses, and ATTACH_TABLE. */
export const DRIVER_FEATURES: bigint =
  featureBit(VirtioFeature.VERSION_1) |
  featureBit(VirtioFeature.EVENT_IDX) |
  featureBit(VirtioFeature.INDIRECT_DESC) |
  featureBit(IommuFeature.MAP_UNMAP) |
  featureBit(IommuFeature.INPUT_RANGE) |
  featureBit(IommuFeature.DOMAIN_RANGE) |
  featureBit(IommuFeature.PROBE) |
  featureBit(IommuFeature.MMIO) |
  featureBit(IommuFeature.BYPASS_CONFIG) |
  featureBit(IommuFeature.ATTACH_TABLE);

/** The largest `probe_size` the driver accepts; a larger one is a broken device. */
export const MAX_PROBE_SIZE = 0x10_0000;

/** Negotiated device features, by name. */
export interface IommuFeatures {
  inputRange: boolean;
  domainRange: boolean;
  mapUnmap: boolean;
  probe: boolean;
  mmio: boolean;
  bypassConfig: boolean;
  attachTable: boolean;
}

/** The configuration space as the driver read it (virtio 1.2 §5.13.4). */
export interface IommuConfig {
  pageSizeMask: bigint;
  /** Lowest set bit of `pageSizeMask`: the granule every MAP is aligned to. */
  granule: bigint;
  /** Inclusive; [0, 2^64 - 1] without F_INPUT_RANGE. */
  inputRange: { start: bigint; end: bigint };
  /** Inclusive; [0, 2^32 - 1] without F_DOMAIN_RANGE. */
  domainRange: { start: number; end: number };
  /** 0 without F_PROBE. */
  probeSize: number;
  /** The `bypass` field; `undefined` without F_BYPASS_CONFIG. */
  bypass: boolean | undefined;
}

/** The configuration reads the driver needs from the transport. */
export interface ConfigReader {
  readConfig8(offset: number): number;
  readConfig32(offset: number): number;
  readConfig64(offset: number): bigint;
}

export function decodeFeatures(features: bigint): IommuFeatures {
  const has = (bit: number) => (features & featureBit(bit)) !== 0n;
  return {
    inputRange: has(IommuFeature.INPUT_RANGE),
    domainRange: has(IommuFeature.DOMAIN_RANGE),
    mapUnmap: has(IommuFeature.MAP_UNMAP),
    probe: has(IommuFeature.PROBE),
    mmio: has(IommuFeature.MMIO),
    bypassConfig: has(IommuFeature.BYPASS_CONFIG),
    attachTable: has(IommuFeature.ATTACH_TABLE),
  };
}

/**
 * Why the driver cannot use a device with these features, or null. Linux needs MAP_UNMAP; the
 * nested drafts accept ATTACH_TABLE instead (virtio-iommu-wire §1.2).
 */
export function featureProblem(features: IommuFeatures): string | null {
  if (!features.mapUnmap && !features.attachTable) {
    return 'the device offers neither MAP_UNMAP nor ATTACH_TABLE, so no domain could translate anything';
  }
  return null;
}

/** Lowest set bit of a non-zero mask. */
export function lowestBit(mask: bigint): bigint {
  return mask & -mask;
}

/** Reads and checks the configuration space; throws EINVAL for values the spec forbids. */
export function readIommuConfig(reader: ConfigReader, features: IommuFeatures): IommuConfig {
  const pageSizeMask = reader.readConfig64(ConfigOffset.PAGE_SIZE_MASK);
  // virtio 1.2 §5.13.4.1: the device MUST set at least one bit in page_size_mask.
  if (pageSizeMask === 0n)
    throw new VmmError('EINVAL', 'virtio-iommu page_size_mask is 0 (the device must set a bit)');
  let inputRange = { start: 0n, end: U64_MAX };
  if (features.inputRange) {
    inputRange = {
      start: reader.readConfig64(ConfigOffset.INPUT_START),
      end: reader.readConfig64(ConfigOffset.INPUT_END),
    };
    if (inputRange.start > inputRange.end) {
      throw new VmmError(
        'EINVAL',
        `virtio-iommu input_range [${hex(inputRange.start)}, ${hex(inputRange.end)}] is empty`,
      );
    }
  }
  let domainRange = { start: 0, end: 0xffff_ffff };
  if (features.domainRange) {
    domainRange = {
      start: reader.readConfig32(ConfigOffset.DOMAIN_START) >>> 0,
      end: reader.readConfig32(ConfigOffset.DOMAIN_END) >>> 0,
    };
    if (domainRange.start > domainRange.end) {
      throw new VmmError(
        'EINVAL',
        `virtio-iommu domain_range [${domainRange.start}, ${domainRange.end}] is empty`,
      );
    }
  }
  let probeSize = 0;
  if (features.probe) {
    probeSize = reader.readConfig32(ConfigOffset.PROBE_SIZE) >>> 0;
    if (probeSize > MAX_PROBE_SIZE) {
      throw new VmmError(
        'ERANGE',
        `virtio-iommu probe_size ${probeSize} exceeds the ${MAX_PROBE_SIZE} bytes the driver accepts`,
      );
    }
  }
  // virtio 1.2 §5.13.4.2: the driver SHOULD ignore bits 1-7 of bypass.
  const bypass = features.bypassConfig ? (reader.readConfig8(ConfigOffset.BYPASS) & 1) === 1 : undefined;
  return { pageSizeMask, granule: lowestBit(pageSizeMask), inputRange, domainRange, probeSize, bypass };
}

/**
 * `preferred`, or the largest power of two the queue allows when QueueNumMax is smaller
 * (virtio 1.2 §4.2.3.2: QueueNum must not exceed QueueNumMax). A queue that does not exist
 * keeps `preferred`, so the transport's setup reports it.
 */
export function defaultQueueSize(mmio: MmioAccessor, base: number, index: number, preferred: number): number {
  mmio.write32(base + VirtioMmioReg.QUEUE_SEL, index);
  const max = mmio.read32(base + VirtioMmioReg.QUEUE_NUM_MAX) >>> 0;
  if (max === 0 || max >= preferred) return preferred;
  return 2 ** Math.floor(Math.log2(max));
}

/** A device `startIommu` brought up: the negotiated features, the configuration and both queues. */
export interface StartedIommu {
  /** Negotiated feature bits, transport bits included. */
  featureBits: bigint;
  features: IommuFeatures;
  config: IommuConfig;
  queues: DriverQueue[];
}

/**
 * `viommu_probe` up to the queues: checks that `transport` fronts a virtio-iommu, negotiates,
 * sets up the request and event queues and reads the configuration. A device the driver cannot
 * use is reset again before the error is thrown.
 */
export function startIommu(transport: VirtioMmioDriver, options: VirtioIommuDriverOptions): StartedIommu {
  const { mmio, base } = options;
  const id = transport.probe();
  if (id !== VIRTIO_IOMMU_DEVICE_ID) {
    throw new VmmError(
      'ENOENT',
      `no virtio-iommu at ${hex(base)}: ${id === null ? 'no virtio-mmio v2 device' : `device ID ${id}`}`,
    );
  }
  const { features, queues } = transport.initialize({
    wanted: options.features ?? DRIVER_FEATURES,
    queueSizes: [
      options.requestQueueSize ?? defaultQueueSize(mmio, base, RequestQueue, 256),
      options.eventQueueSize ?? defaultQueueSize(mmio, base, EventQueue, 64),
    ],
  });
  const decoded = decodeFeatures(features);
  try {
    const problem = featureProblem(decoded);
    if (problem !== null) throw new VmmError('ENOSYS', `virtio-iommu at ${hex(base)}: ${problem}`);
    return { featureBits: features, features: decoded, config: readIommuConfig(transport, decoded), queues };
  } catch (error) {
    transport.reset();
    throw error;
  }
}
