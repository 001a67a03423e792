import { hex, type NestedBackendRegistry, VmmError } from '@vmmkit/core';
import { IommuFeature } from '../protocol/constants.js';
import type { ReservedRegionSubtype } from '../protocol/properties.js';
import { toU64, U64_MAX } from '../protocol/u64.js';

export interface ReservedRegionOption {
  /** First IOVA of the region. */
  start: bigint | number;
  /** Last IOVA (inclusive). */
  end: bigint | number;
  subtype: ReservedRegionSubtype;
}

export interface EndpointOption {
  /** Platform endpoint ID (e.g. a PCI requester ID). */
  id: number;
  /** RESV_MEM regions reported by PROBE and refused by MAP. */
  reservedRegions?: readonly ReservedRegionOption[];
  /** Nested table formats offered to this endpoint (default: every registered format). */
  tableFormats?: readonly number[];
}

/** Device features the VMM offers; transport bits (VERSION_1, EVENT_IDX, INDIRECT_DESC) are separate. */
export interface IommuFeatureOptions {
  inputRange?: boolean;
  domainRange?: boolean;
  mapUnmap?: boolean;
  /** Legacy `F_BYPASS`; off by default (the spec says new devices should not offer it). */
  bypass?: boolean;
  probe?: boolean;
  mmio?: boolean;
  bypassConfig?: boolean;
  /** vmmkit's nested extension (bit 8). */
  attachTable?: boolean;
  eventIdx?: boolean;
  indirectDesc?: boolean;
}

export interface VirtioIommuDeviceOptions {
  endpoints: readonly EndpointOption[];
  /** Default 4 KiB granule with every larger size allowed, as QEMU: 0xffff_ffff_ffff_f000. */
  pageSizeMask?: bigint;
  /** Default the whole 64-bit space. */
  inputRange?: { start: bigint | number; end: bigint | number };
  /** Default [0, 2^32 - 1]. */
  domainRange?: { start: number; end: number };
  /** Bytes of PROBE properties; default 512 (QEMU). */
  probeSize?: number;
  /** Initial `bypass` config value (QEMU's boot-bypass); default true. */
  bypass?: boolean;
  features?: IommuFeatureOptions;
  /** Table formats for ATTACH_TABLE (`TOKENS.NestedBackendRegistry`). */
  nestedBackends?: NestedBackendRegistry;
  /** Cap on live domains; default 2^16. */
  maxDomains?: number;
  /** Cap on mappings per domain; default 2^20. */
  maxMappingsPerDomain?: number;
  /**
   * Cap on mappings over all domains. Default: none beyond the per-domain cap, since every live
   * domain holds at least one of the declared endpoints (so at most endpoints × per-domain cap).
   */
  maxMappings?: number;
  /** Size of both virtqueues; default 256 (QEMU, kvmtool). */
  queueSize?: number;
  name?: string;
}

export interface ResolvedRegion {
  start: bigint;
  end: bigint;
  msi: boolean;
}

export interface ResolvedEndpoint {
  id: number;
  regions: ResolvedRegion[];
  tableFormats: readonly number[] | null;
}

/** Options after validation, with defaults applied. */
export interface ResolvedOptions {
  name: string;
  endpoints: ResolvedEndpoint[];
  pageSizeMask: bigint;
  inputStart: bigint;
  inputEnd: bigint;
  domainStart: number;
  domainEnd: number;
  probeSize: number;
  bypass: boolean;
  /** Device-specific feature bits offered. */
  offered: bigint;
  eventIdx: boolean;
  indirectDesc: boolean;
  nestedBackends: NestedBackendRegistry | null;
  maxDomains: number;
  maxMappingsPerDomain: number;
  maxMappings: number;
  queueSize: number;
}

function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;
}

function positive(value: number | undefined, fallback: number, what: string, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new VmmError('EINVAL', `${what} must be an integer from 1 to ${max}, got ${value}`);
  }
  return value;
}

function queueSize(value: number | undefined): number {
  const size = positive(value, 256, 'queueSize', 32768);
  // virtio 1.2 §2.7: split queue sizes are powers of two.
  if ((size & (size - 1)) !== 0)
    throw new VmmError('EINVAL', `queueSize must be a power of two, got ${size}`);
  return size;
}

export function resolveOptions(options: VirtioIommuDeviceOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object' || !Array.isArray(options.endpoints)) {
    throw new VmmError('EINVAL', 'virtio-iommu options need an `endpoints` array (it may be empty)');
  }
  const pageSizeMask = options.pageSizeMask ?? 0xffff_ffff_ffff_f000n;
  if (typeof pageSizeMask !== 'bigint' || pageSizeMask <= 0n || pageSizeMask > U64_MAX) {
    throw new VmmError(
      'EINVAL',
      `pageSizeMask must be a non-zero u64 bigint (virtio 1.2 §5.13.4: at least one bit set), got ${String(pageSizeMask)}`,
    );
  }
  const inputStart = toU64(options.inputRange?.start ?? 0n, 'inputRange.start');
  const inputEnd = toU64(options.inputRange?.end ?? U64_MAX, 'inputRange.end');
  if (inputStart > inputEnd) {
    throw new VmmError(
      'EINVAL',
      `inputRange.start ${hex(inputStart)} is above inputRange.end ${hex(inputEnd)}`,
    );
  }
  const domainStart = options.domainRange?.start ?? 0;
  const domainEnd = options.domainRange?.end ?? 0xffff_ffff;
  if (!isU32(domainStart) || !isU32(domainEnd) || domainStart > domainEnd) {
    throw new VmmError(
      'EINVAL',
      `domainRange must be two le32 values with start <= end, got [${domainStart}, ${domainEnd}]`,
    );
  }
  const probeSize = options.probeSize ?? 512;
  if (!isU32(probeSize) || probeSize > 0x1_0000) {
    throw new VmmError('EINVAL', `probeSize must be an integer from 0 to 65536, got ${probeSize}`);
  }
  const f = options.features ?? {};
  const bits: [boolean | undefined, boolean, number][] = [
    [f.inputRange, true, IommuFeature.INPUT_RANGE],
    [f.domainRange, true, IommuFeature.DOMAIN_RANGE],
    [f.mapUnmap, true, IommuFeature.MAP_UNMAP],
    [f.bypass, false, IommuFeature.BYPASS],
    [f.probe, true, IommuFeature.PROBE],
    [f.mmio, true, IommuFeature.MMIO],
    [f.bypassConfig, true, IommuFeature.BYPASS_CONFIG],
    [f.attachTable, true, IommuFeature.ATTACH_TABLE],
  ];
  let offered = 0n;
  for (const [value, fallback, bit] of bits) if (value ?? fallback) offered |= 1n << BigInt(bit);
  const seen = new Set<number>();
  const endpoints = options.endpoints.map((e: EndpointOption, index: number): ResolvedEndpoint => {
    if (!isU32(e?.id))
      throw new VmmError('EINVAL', `endpoints[${index}].id must be a le32, got ${String(e?.id)}`);
    if (seen.has(e.id)) throw new VmmError('EEXIST', `endpoint ${e.id} is listed twice`);
    seen.add(e.id);
    const regions = (e.reservedRegions ?? []).map((r: ReservedRegionOption, i: number): ResolvedRegion => {
      const what = `endpoint ${e.id} reservedRegions[${i}]`;
      const start = toU64(r.start, `${what}.start`);
      const end = toU64(r.end, `${what}.end`);
      if (start > end) throw new VmmError('EINVAL', `${what}: start ${hex(start)} is above end ${hex(end)}`);
      if (r.subtype !== 'msi' && r.subtype !== 'reserved') {
        throw new VmmError('EINVAL', `${what}.subtype must be 'reserved' or 'msi', got ${String(r.subtype)}`);
      }
      return { start, end, msi: r.subtype === 'msi' };
    });
    regions.sort((a: ResolvedRegion, b: ResolvedRegion) =>
      a.start < b.start ? -1 : a.start > b.start ? 1 : 0,
    );
    for (let i = 1; i < regions.length; i++) {
      // virtio 1.2 §5.13.6.8.2.1: the device SHOULD NOT present overlapping regions.
      if (regions[i]!.start <= regions[i - 1]!.end) {
        throw new VmmError(
          'EINVAL',
          `endpoint ${e.id} has overlapping reserved regions at ${hex(regions[i]!.start)}`,
        );
      }
    }
    // virtio 1.2 §5.13.6.8.2.1: the device SHOULD present at most one MSI region per endpoint.
    if (regions.filter((r: ResolvedRegion) => r.msi).length > 1) {
      throw new VmmError('EINVAL', `endpoint ${e.id} has more than one MSI region; report at most one`);
    }
    const tableFormats = e.tableFormats === undefined ? null : [...e.tableFormats];
    return { id: e.id, regions, tableFormats };
  });
  return {
    name: options.name ?? 'virtio-iommu',
    endpoints,
    pageSizeMask,
    inputStart,
    inputEnd,
    domainStart,
    domainEnd,
    probeSize,
    bypass: options.bypass ?? true,
    offered,
    eventIdx: f.eventIdx ?? true,
    indirectDesc: f.indirectDesc ?? true,
    nestedBackends: options.nestedBackends ?? null,
    maxDomains: positive(options.maxDomains, 1 << 16, 'maxDomains', 0x1_0000_0000),
    maxMappingsPerDomain: positive(options.maxMappingsPerDomain, 1 << 20, 'maxMappingsPerDomain', 2 ** 31),
    maxMappings: positive(options.maxMappings, 2 ** 53 - 1, 'maxMappings', 2 ** 53 - 1),
    queueSize: queueSize(options.queueSize),
  };
}
