import { VmmError } from '@vmmkit/core';
import { InvalidateFlag, MAP_FLAGS_MASK, RequestSize, RequestType } from './constants.js';
import { getU64, setU64, toU64 } from './u64.js';

/**
 * Byte layouts of the device-readable part of each request (virtio 1.2 §5.13.6, PROTOCOL.md).
 * The device reads fields at these offsets straight from its reused buffer; the encoders and
 * `decodeRequest` below are for drivers, tests and tools.
 */
export const AttachOffset = { DOMAIN: 4, ENDPOINT: 8, FLAGS: 12, RESERVED: 16 } as const;
export const DetachOffset = { DOMAIN: 4, ENDPOINT: 8, RESERVED: 12 } as const;
export const MapOffset = { DOMAIN: 4, VIRT_START: 8, VIRT_END: 16, PHYS_START: 24, FLAGS: 32 } as const;
export const UnmapOffset = { DOMAIN: 4, VIRT_START: 8, VIRT_END: 16, RESERVED: 24 } as const;
export const ProbeOffset = { ENDPOINT: 4, RESERVED: 8 } as const;
export const AttachTableOffset = { DOMAIN: 4, ENDPOINT: 8, FLAGS: 12, FORMAT: 16, PAYLOAD: 18 } as const;
export const InvalidateOffset = {
  GRANULARITY: 4,
  CACHES: 6,
  FLAGS: 8,
  RESERVED1: 10,
  DOMAIN: 12,
  PASID: 16,
  RESERVED2: 20,
  ARCHID: 24,
  VIRT_START: 32,
  NR_PAGES: 40,
  GRANULE: 48,
  RESERVED3: 49,
} as const;

export interface AttachRequest {
  type: 'attach';
  domain: number;
  endpoint: number;
  flags: number;
  /** The four reserved bytes, as a le32 (must be 0). */
  reserved: number;
}
export interface DetachRequest {
  type: 'detach';
  domain: number;
  endpoint: number;
}
export interface MapRequest {
  type: 'map';
  domain: number;
  virtStart: bigint;
  /** Inclusive. */
  virtEnd: bigint;
  physStart: bigint;
  flags: number;
}
export interface UnmapRequest {
  type: 'unmap';
  domain: number;
  virtStart: bigint;
  virtEnd: bigint;
  reserved: number;
}
export interface ProbeRequest {
  type: 'probe';
  endpoint: number;
}
export interface AttachTableRequest {
  type: 'attach-table';
  domain: number;
  endpoint: number;
  flags: number;
  format: number;
  /** Bytes 16..83: the le16 format then the format payload (what a nested backend receives). */
  payload: Uint8Array;
}
export interface InvalidateRequest {
  type: 'invalidate';
  granularity: number;
  caches: number;
  flags: number;
  domain: number;
  pasid: number;
  archid: bigint;
  virtStart: bigint;
  nrPages: bigint;
  granule: number;
}
export type IommuRequest =
  | AttachRequest
  | DetachRequest
  | MapRequest
  | UnmapRequest
  | ProbeRequest
  | AttachTableRequest
  | InvalidateRequest;

function u32(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new VmmError('EINVAL', `${what} must be a le32 (an integer from 0 to 2^32 - 1), got ${value}`);
  }
  return value;
}

function u16(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
    throw new VmmError('EINVAL', `${what} must be a le16 (an integer from 0 to 65535), got ${value}`);
  }
  return value;
}

function start(type: number, size: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(size);
  bytes[0] = type;
  return { bytes, view: new DataView(bytes.buffer) };
}

/** The 20 readable bytes of ATTACH. */
export function encodeAttach(r: {
  domain: number;
  endpoint: number;
  flags?: number;
  reserved?: number;
}): Uint8Array {
  const { bytes, view } = start(RequestType.ATTACH, RequestSize.ATTACH);
  view.setUint32(AttachOffset.DOMAIN, u32(r.domain, 'domain'), true);
  view.setUint32(AttachOffset.ENDPOINT, u32(r.endpoint, 'endpoint'), true);
  view.setUint32(AttachOffset.FLAGS, u32(r.flags ?? 0, 'flags'), true);
  view.setUint32(AttachOffset.RESERVED, u32(r.reserved ?? 0, 'reserved'), true);
  return bytes;
}

/** The 20 readable bytes of DETACH. */
export function encodeDetach(r: { domain: number; endpoint: number }): Uint8Array {
  const { bytes, view } = start(RequestType.DETACH, RequestSize.DETACH);
  view.setUint32(DetachOffset.DOMAIN, u32(r.domain, 'domain'), true);
  view.setUint32(DetachOffset.ENDPOINT, u32(r.endpoint, 'endpoint'), true);
  return bytes;
}

/** The 36 readable bytes of MAP; `virtEnd` is inclusive. */
export function encodeMap(r: {
  domain: number;
  virtStart: bigint | number;
  virtEnd: bigint | number;
  physStart: bigint | number;
  flags: number;
}): Uint8Array {
  const { bytes, view } = start(RequestType.MAP, RequestSize.MAP);
  view.setUint32(MapOffset.DOMAIN, u32(r.domain, 'domain'), true);
  setU64(view, MapOffset.VIRT_START, toU64(r.virtStart, 'virtStart'));
  setU64(view, MapOffset.VIRT_END, toU64(r.virtEnd, 'virtEnd'));
  setU64(view, MapOffset.PHYS_START, toU64(r.physStart, 'physStart'));
  view.setUint32(MapOffset.FLAGS, u32(r.flags, 'flags'), true);
  return bytes;
}

/** The 28 readable bytes of UNMAP; `virtEnd` is inclusive. */
export function encodeUnmap(r: {
  domain: number;
  virtStart: bigint | number;
  virtEnd: bigint | number;
  reserved?: number;
}): Uint8Array {
  const { bytes, view } = start(RequestType.UNMAP, RequestSize.UNMAP);
  view.setUint32(UnmapOffset.DOMAIN, u32(r.domain, 'domain'), true);
  setU64(view, UnmapOffset.VIRT_START, toU64(r.virtStart, 'virtStart'));
  setU64(view, UnmapOffset.VIRT_END, toU64(r.virtEnd, 'virtEnd'));
  view.setUint32(UnmapOffset.RESERVED, u32(r.reserved ?? 0, 'reserved'), true);
  return bytes;
}

/** The 72 readable bytes of PROBE. */
export function encodeProbe(r: { endpoint: number }): Uint8Array {
  const { bytes, view } = start(RequestType.PROBE, RequestSize.PROBE);
  view.setUint32(ProbeOffset.ENDPOINT, u32(r.endpoint, 'endpoint'), true);
  return bytes;
}

/** The 84 readable bytes of ATTACH_TABLE; `payload` is what follows the format (bytes 18..83, at most 66). */
export function encodeAttachTable(r: {
  domain: number;
  endpoint: number;
  flags?: number;
  format: number;
  payload?: Uint8Array;
}): Uint8Array {
  const { bytes, view } = start(RequestType.ATTACH_TABLE, RequestSize.ATTACH_TABLE);
  view.setUint32(AttachTableOffset.DOMAIN, u32(r.domain, 'domain'), true);
  view.setUint32(AttachTableOffset.ENDPOINT, u32(r.endpoint, 'endpoint'), true);
  view.setUint32(AttachTableOffset.FLAGS, u32(r.flags ?? 0, 'flags'), true);
  view.setUint16(AttachTableOffset.FORMAT, u16(r.format, 'format'), true);
  const payload = r.payload ?? new Uint8Array(0);
  if (payload.length > RequestSize.ATTACH_TABLE - AttachTableOffset.PAYLOAD) {
    throw new VmmError('EINVAL', `an ATTACH_TABLE payload holds at most 66 bytes, got ${payload.length}`);
  }
  bytes.set(payload, AttachTableOffset.PAYLOAD);
  return bytes;
}

/** The 60 readable bytes of INVALIDATE. */
export function encodeInvalidate(r: {
  granularity: number;
  caches: number;
  flags?: number;
  domain: number;
  pasid?: number;
  archid?: bigint | number;
  virtStart?: bigint | number;
  nrPages?: bigint | number;
  granule?: number;
}): Uint8Array {
  const { bytes, view } = start(RequestType.INVALIDATE, RequestSize.INVALIDATE);
  let flags = r.flags;
  if (flags === undefined) {
    flags =
      (r.pasid !== undefined ? InvalidateFlag.PASID : 0) |
      (r.archid !== undefined ? InvalidateFlag.ARCHID : 0);
  }
  view.setUint16(InvalidateOffset.GRANULARITY, u16(r.granularity, 'granularity'), true);
  view.setUint16(InvalidateOffset.CACHES, u16(r.caches, 'caches'), true);
  view.setUint16(InvalidateOffset.FLAGS, u16(flags, 'flags'), true);
  view.setUint32(InvalidateOffset.DOMAIN, u32(r.domain, 'domain'), true);
  view.setUint32(InvalidateOffset.PASID, u32(r.pasid ?? 0, 'pasid'), true);
  setU64(view, InvalidateOffset.ARCHID, toU64(r.archid ?? 0n, 'archid'));
  setU64(view, InvalidateOffset.VIRT_START, toU64(r.virtStart ?? 0n, 'virtStart'));
  setU64(view, InvalidateOffset.NR_PAGES, toU64(r.nrPages ?? 0n, 'nrPages'));
  const granule = r.granule ?? 0;
  if (!Number.isInteger(granule) || granule < 0 || granule > 0xff) {
    throw new VmmError('EINVAL', `granule is a u8 (log2 of the page size), got ${granule}`);
  }
  bytes[InvalidateOffset.GRANULE] = granule;
  return bytes;
}

/**
 * Decodes the readable part of a request, or returns `null` when the bytes are too short for
 * their type or the type is unknown (the device answers those with used length 0).
 */
export function decodeRequest(bytes: Uint8Array): IommuRequest | null {
  if (bytes.length < RequestSize.HEAD) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = (offset: number) => view.getUint32(offset, true);
  switch (bytes[0]) {
    case RequestType.ATTACH:
      if (bytes.length < RequestSize.ATTACH) return null;
      return { type: 'attach', domain: at(4), endpoint: at(8), flags: at(12), reserved: at(16) };
    case RequestType.DETACH:
      if (bytes.length < RequestSize.DETACH) return null;
      return { type: 'detach', domain: at(4), endpoint: at(8) };
    case RequestType.MAP:
      if (bytes.length < RequestSize.MAP) return null;
      return {
        type: 'map',
        domain: at(4),
        virtStart: getU64(view, 8),
        virtEnd: getU64(view, 16),
        physStart: getU64(view, 24),
        flags: at(32),
      };
    case RequestType.UNMAP:
      if (bytes.length < RequestSize.UNMAP) return null;
      return {
        type: 'unmap',
        domain: at(4),
        virtStart: getU64(view, 8),
        virtEnd: getU64(view, 16),
        reserved: at(24),
      };
    case RequestType.PROBE:
      if (bytes.length < RequestSize.PROBE) return null;
      return { type: 'probe', endpoint: at(4) };
    case RequestType.ATTACH_TABLE:
      if (bytes.length < RequestSize.ATTACH_TABLE) return null;
      return {
        type: 'attach-table',
        domain: at(4),
        endpoint: at(8),
        flags: at(12),
        format: view.getUint16(16, true),
        payload: bytes.slice(AttachTableOffset.FORMAT, RequestSize.ATTACH_TABLE),
      };
    case RequestType.INVALIDATE:
      if (bytes.length < RequestSize.INVALIDATE) return null;
      return {
        type: 'invalidate',
        granularity: view.getUint16(4, true),
        caches: view.getUint16(6, true),
        flags: view.getUint16(8, true),
        domain: at(12),
        pasid: at(16),
        archid: getU64(view, 24),
        virtStart: getU64(view, 32),
        nrPages: getU64(view, 40),
        granule: bytes[48]!,
      };
    default:
      return null;
  }
}

/** Whether MAP flags only use defined bits (the MMIO bit still depends on F_MMIO). */
export function mapFlagsKnown(flags: number): boolean {
  return (flags & ~MAP_FLAGS_MASK) === 0;
}
