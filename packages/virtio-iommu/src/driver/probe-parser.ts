/**
 * What the driver makes of the PROBE `properties[]` a device wrote (virtio 1.2 §5.13.6.8, nested
 * types 2-7 of docs/PROTOCOL.md). The bytes come from the device and are untrusted: parsing
 * never throws; what the driver cannot use it skips and records.
 */
import { hex, type NestedFormatDescription } from '@vmmkit/core';
import { ResvMemSubtype, TableFormat } from '../protocol/constants.js';
import { type ProbeProperty, parseProperties } from '../protocol/properties.js';
import { U64_MAX } from '../protocol/u64.js';

export interface ReservedRegion {
  /** Inclusive bounds, exact over the full 64-bit IOVA space. */
  start: bigint;
  end: bigint;
  /** `reserved` for RESERVED and for subtypes the driver does not know (virtio 1.2 §5.13.6.8.2.2). */
  subtype: 'reserved' | 'msi';
  /** The subtype byte as reported. */
  rawSubtype: number;
}

/** Nested geometry properties (types 2-5); a field is `undefined` when not reported. */
export interface ProbeGeometry {
  pageSizeMask?: bigint;
  inputRange?: { start: bigint; end: bigint };
  outputBits?: number;
  pasidBits?: number;
}

/** One PAGE_TABLE_FMT (type 6) or PASID_TABLE_FMT (type 7) property as reported. */
export interface TableFormatOffer {
  kind: 'page-table' | 'pasid-table';
  format: number;
  asidBits: number;
  flags: number;
  /**
   * The geometry in force when the format property came: the properties of its group (the
   * device reports PAGE_SIZE_MASK … PASID_SIZE before each format property) over any reported
   * earlier for the endpoint.
   */
  geometry: ProbeGeometry;
}

/** Why a property was not used; kept for diagnostics. */
export interface SkippedProperty {
  type: ProbeProperty['type'];
  reason: string;
}

/** Everything PROBE said about one endpoint. */
export interface EndpointProbe extends ProbeGeometry {
  /** Sorted by start address. */
  reservedRegions: ReservedRegion[];
  /** Each table format property, in the order reported (first of each format/kind kept). */
  tableFormats: TableFormatOffer[];
  skipped: SkippedProperty[];
}

/** Defaults for geometry the endpoint did not report: the device-wide configuration. */
export interface ProbeGeometryDefaults {
  pageSizeMask: bigint;
  inputRange: { start: bigint; end: bigint };
}

/** Widest PASID the driver accepts: PCIe PASIDs are 20 bits. */
export const MAX_PASID_BITS = 20;

/**
 * Parses `bytes` (the `probe_size` bytes of `properties[]`) with the protocol module's walker,
 * which stops at NONE or the end, skips reserved-bit and short properties and never reads past
 * the buffer; then checks each value the way the driver needs it and sorts the reserved regions.
 */
export function parseProbeProperties(bytes: Uint8Array): EndpointProbe {
  const result: EndpointProbe = { reservedRegions: [], tableFormats: [], skipped: [] };
  const current: ProbeGeometry = {};
  for (const property of parseProperties(bytes)) {
    const problem = interpretProperty(property, result, current);
    if (problem !== null) result.skipped.push({ type: property.type, reason: problem });
  }
  result.reservedRegions.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  return result;
}

/**
 * Stores one property; returns why it was not used, or null. Geometry goes into `current`
 * (latest wins, for the format property that follows) and, the first time, into the endpoint.
 */
function interpretProperty(p: ProbeProperty, out: EndpointProbe, current: ProbeGeometry): string | null {
  switch (p.type) {
    case 'resv-mem': {
      // Linux viommu_add_resv_mem: reject start > end and a size end - start + 1 that wraps to 0.
      if (p.start > p.end) return `reserved region start ${hex(p.start)} above end ${hex(p.end)}`;
      if (p.end - p.start + 1n > U64_MAX)
        return 'reserved region covers the whole 64-bit space (its size overflows)';
      // virtio 1.2 §5.13.6.8.2.2: the driver treats unknown subtypes as RESERVED.
      const subtype = p.subtype === ResvMemSubtype.MSI ? 'msi' : 'reserved';
      out.reservedRegions.push({ start: p.start, end: p.end, subtype, rawSubtype: p.subtype });
      return null;
    }
    case 'page-size-mask':
      // virtio 1.2 §5.13.4: a page size mask has at least one bit set.
      if (p.mask === 0n) return 'page size mask is zero';
      current.pageSizeMask = p.mask;
      out.pageSizeMask ??= p.mask;
      return null;
    case 'input-range':
      if (p.start > p.end) return `input range start ${hex(p.start)} above end ${hex(p.end)}`;
      current.inputRange = { start: p.start, end: p.end };
      out.inputRange ??= current.inputRange;
      return null;
    case 'output-size':
      if (p.bits === 0 || p.bits > 64) return `output size of ${p.bits} bits`;
      current.outputBits = p.bits;
      out.outputBits ??= p.bits;
      return null;
    case 'pasid-size':
      if (p.bits > MAX_PASID_BITS) return `PASID size of ${p.bits} bits exceeds ${MAX_PASID_BITS}`;
      current.pasidBits = p.bits;
      out.pasidBits ??= p.bits;
      return null;
    case 'page-table-fmt':
    case 'pasid-table-fmt': {
      const kind = p.type === 'pasid-table-fmt' ? 'pasid-table' : 'page-table';
      if (p.format === 0) return 'table format 0';
      if (p.asidBits > 16) return `ASID size of ${p.asidBits} bits exceeds 16`;
      if (out.tableFormats.some((f) => f.kind === kind && f.format === p.format)) {
        return `duplicate ${kind} format ${p.format} (first kept)`;
      }
      out.tableFormats.push({
        kind,
        format: p.format,
        asidBits: p.asidBits,
        flags: p.flags,
        geometry: { ...current },
      });
      return null;
    }
    case 'unknown':
      // virtio 1.2 §5.13.6.8.1: the driver MUST ignore properties of unknown type.
      return `unknown type ${p.rawType}`;
  }
}

/** Number of bits needed to address `end` (log2(end) + 1; 0 for end 0). */
export function bitsToCover(end: bigint): number {
  return end === 0n ? 0 : end.toString(2).length;
}

/**
 * A typed description of each table format the endpoint offered, with the geometry of its group:
 * page sizes from PAGE_SIZE_MASK (else the device's), input bits from INPUT_RANGE (else the
 * device's), output bits from OUTPUT_SIZE, PASID bits from PASID_SIZE. A format without OUTPUT_SIZE is left
 * out, as the drafts' driver refuses to attach it (virtio-iommu-wire §4.3), and so is a PASID
 * table without PASID_SIZE.
 */
export function describeTableFormats(
  probe: EndpointProbe,
  defaults: ProbeGeometryDefaults,
): NestedFormatDescription[] {
  const out: NestedFormatDescription[] = [];
  for (const offer of probe.tableFormats) {
    const g = offer.geometry;
    if (g.outputBits === undefined) continue;
    if (offer.kind === 'pasid-table' && g.pasidBits === undefined) continue;
    out.push({
      format: offer.format,
      kind: offer.kind,
      asidBits: offer.asidBits,
      flags: offer.flags,
      outputBits: g.outputBits,
      pasidBits: offer.kind === 'pasid-table' ? g.pasidBits! : 0,
      pageSizeMask: g.pageSizeMask ?? defaults.pageSizeMask,
      inputBits: bitsToCover((g.inputRange ?? defaults.inputRange).end),
    });
  }
  return out;
}

/** Display name of a table format number. */
export function tableFormatName(format: number): string {
  switch (format) {
    case TableFormat.ARM_LPAE:
      return 'arm-lpae';
    case TableFormat.ARM_SMMU_V3:
      return 'arm-smmu-v3';
    case TableFormat.VIRT:
      return 'virt';
    default:
      return `format-${format}`;
  }
}
