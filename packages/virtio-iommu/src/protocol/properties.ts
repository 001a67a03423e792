import { VmmError } from '@vmmkit/core';
import {
  PROBE_HEADER_SIZE,
  PROBE_TYPE_MASK,
  ProbePropertySize,
  ProbeType,
  ResvMemSubtype,
} from './constants.js';
import { getU64, setU64 } from './u64.js';

/**
 * PROBE properties (virtio 1.2 §5.13.6.8 and PROTOCOL.md types 2-7): a header
 * `{ type le16 (bits 11:0), length le16 }`, where `length` counts the value only.
 */

export type ReservedRegionSubtype = 'reserved' | 'msi';

export type ProbeProperty =
  | { type: 'resv-mem'; subtype: number; start: bigint; end: bigint }
  | { type: 'page-size-mask'; mask: bigint }
  | { type: 'input-range'; start: bigint; end: bigint }
  | { type: 'output-size'; bits: number }
  | { type: 'pasid-size'; bits: number }
  | { type: 'page-table-fmt' | 'pasid-table-fmt'; format: number; asidBits: number; flags: number }
  | { type: 'unknown'; rawType: number; value: Uint8Array };

function header(view: DataView, at: number, type: number, total: number): void {
  view.setUint16(at, type, true);
  view.setUint16(at + 2, total - PROBE_HEADER_SIZE, true);
}

/** Size in bytes (header included) `property` takes in a PROBE answer. */
export function propertySize(property: ProbeProperty): number {
  switch (property.type) {
    case 'resv-mem':
      return ProbePropertySize.RESV_MEM;
    case 'page-size-mask':
      return ProbePropertySize.PAGE_SIZE_MASK;
    case 'input-range':
      return ProbePropertySize.INPUT_RANGE;
    case 'output-size':
    case 'pasid-size':
      return ProbePropertySize.OUTPUT_SIZE;
    case 'page-table-fmt':
    case 'pasid-table-fmt':
      return ProbePropertySize.TABLE_FMT;
    case 'unknown':
      return PROBE_HEADER_SIZE + property.value.length;
  }
}

/** Writes `property` at `at`; returns the bytes written. The caller checked it fits. */
export function writeProperty(view: DataView, at: number, property: ProbeProperty): number {
  const size = propertySize(property);
  switch (property.type) {
    case 'resv-mem':
      header(view, at, ProbeType.RESV_MEM, size);
      view.setUint8(at + 4, property.subtype);
      setU64(view, at + 8, property.start);
      setU64(view, at + 16, property.end);
      break;
    case 'page-size-mask':
      header(view, at, ProbeType.PAGE_SIZE_MASK, size);
      setU64(view, at + 8, property.mask);
      break;
    case 'input-range':
      header(view, at, ProbeType.INPUT_RANGE, size);
      setU64(view, at + 8, property.start);
      setU64(view, at + 16, property.end);
      break;
    case 'output-size':
    case 'pasid-size':
      header(view, at, property.type === 'output-size' ? ProbeType.OUTPUT_SIZE : ProbeType.PASID_SIZE, size);
      view.setUint8(at + 4, property.bits);
      break;
    case 'page-table-fmt':
    case 'pasid-table-fmt':
      header(
        view,
        at,
        property.type === 'page-table-fmt' ? ProbeType.PAGE_TABLE_FMT : ProbeType.PASID_TABLE_FMT,
        size,
      );
      view.setUint16(at + 4, property.format, true);
      view.setUint16(at + 6, property.asidBits, true);
      view.setUint32(at + 8, property.flags >>> 0, true);
      break;
    case 'unknown':
      header(view, at, property.rawType, size);
      new Uint8Array(view.buffer, view.byteOffset + at + PROBE_HEADER_SIZE, property.value.length).set(
        property.value,
      );
      break;
  }
  return size;
}

/** Encodes properties into `size` bytes, zero-filled past the last one; throws ERANGE when they do not fit. */
export function encodeProperties(properties: readonly ProbeProperty[], size: number): Uint8Array {
  const total = properties.reduce((sum, p) => sum + propertySize(p), 0);
  if (total > size) {
    throw new VmmError('ERANGE', `PROBE properties need ${total} bytes but probe_size is ${size}`, {
      total,
      size,
    });
  }
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  let at = 0;
  for (const p of properties) at += writeProperty(view, at, p);
  return bytes;
}

/**
 * Parses the properties of a PROBE answer the way a driver must (virtio 1.2 §5.13.6.8.1): stop
 * at type NONE or at the end, never read past the buffer, skip properties whose reserved header
 * bits are set, keep unknown types as `unknown`. Malformed lengths end the walk.
 */
export function parseProperties(bytes: Uint8Array): ProbeProperty[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: ProbeProperty[] = [];
  let at = 0;
  // Each step advances by at least the 4-byte header, so the loop is bounded by the buffer.
  while (at + PROBE_HEADER_SIZE <= bytes.length) {
    const rawHeader = view.getUint16(at, true);
    const length = view.getUint16(at + 2, true);
    const type = rawHeader & PROBE_TYPE_MASK;
    if (type === ProbeType.NONE) break;
    const valueAt = at + PROBE_HEADER_SIZE;
    if (valueAt + length > bytes.length) break;
    const next = valueAt + length;
    // virtio 1.2 §5.13.6.8.1: the driver MUST ignore a property with reserved header bits set.
    if ((rawHeader & ~PROBE_TYPE_MASK) !== 0) {
      at = next;
      continue;
    }
    const need = (total: number) => length >= total - PROBE_HEADER_SIZE;
    switch (type) {
      case ProbeType.RESV_MEM:
        if (need(ProbePropertySize.RESV_MEM)) {
          out.push({
            type: 'resv-mem',
            subtype: view.getUint8(valueAt),
            start: getU64(view, at + 8),
            end: getU64(view, at + 16),
          });
        }
        break;
      case ProbeType.PAGE_SIZE_MASK:
        if (need(ProbePropertySize.PAGE_SIZE_MASK))
          out.push({ type: 'page-size-mask', mask: getU64(view, at + 8) });
        break;
      case ProbeType.INPUT_RANGE:
        if (need(ProbePropertySize.INPUT_RANGE)) {
          out.push({ type: 'input-range', start: getU64(view, at + 8), end: getU64(view, at + 16) });
        }
        break;
      case ProbeType.OUTPUT_SIZE:
      case ProbeType.PASID_SIZE:
        if (need(ProbePropertySize.OUTPUT_SIZE)) {
          out.push({
            type: type === ProbeType.OUTPUT_SIZE ? 'output-size' : 'pasid-size',
            bits: view.getUint8(valueAt),
          });
        }
        break;
      case ProbeType.PAGE_TABLE_FMT:
      case ProbeType.PASID_TABLE_FMT:
        if (need(ProbePropertySize.TABLE_FMT)) {
          out.push({
            type: type === ProbeType.PAGE_TABLE_FMT ? 'page-table-fmt' : 'pasid-table-fmt',
            format: view.getUint16(at + 4, true),
            asidBits: view.getUint16(at + 6, true),
            flags: view.getUint32(at + 8, true),
          });
        }
        break;
      default:
        out.push({ type: 'unknown', rawType: type, value: bytes.slice(valueAt, next) });
    }
    at = next;
  }
  return out;
}

/** The RESV_MEM subtype number of a region kind. */
export function resvSubtype(kind: ReservedRegionSubtype): number {
  return kind === 'msi' ? ResvMemSubtype.MSI : ResvMemSubtype.RESERVED;
}
