import { DmaAccess, NO_PASID, VmmError } from '@vmmkit/core';
import { hi32, joinU64, lo32, toU64, U64_MAX } from '../protocol/u64.js';
import type { PageTranslation, Translator } from './translator.js';

export type DmaAccessName = 'read' | 'write' | 'exec';

export interface TranslateRequest {
  endpoint: number;
  /** Omit (or `NO_PASID`) for a transaction without a PASID. */
  pasid?: number;
  iova: bigint | number;
  /** Bytes of the DMA; default 1. */
  length?: number;
  access: DmaAccessName | DmaAccess;
}

export interface DmaSegment {
  iova: bigint;
  /** Guest-physical address (exact; may lie beyond guest memory for an odd mapping). */
  address: bigint;
  length: number;
  /** Mapped with MAP_F_MMIO. */
  mmio: boolean;
}

export interface DmaFault {
  reason: number;
  flags: number;
  endpoint: number;
  pasid?: number;
  /** The first address that faulted. */
  address: bigint;
  vendorEvent?: unknown;
}

export type DmaTranslation = { ok: true; segments: DmaSegment[] } | { ok: false; fault: DmaFault };

const ACCESS: Record<DmaAccessName, DmaAccess> = {
  read: DmaAccess.READ,
  write: DmaAccess.WRITE,
  exec: DmaAccess.EXEC,
};
/** A DMA longer than this is refused (host API misuse, not a guest fault). */
const MAX_DMA_LENGTH = 2 ** 32;

/** A translation request with its arguments checked (VmmError for API misuse). */
export function checkTranslateRequest(request: TranslateRequest): {
  endpoint: number;
  pasid: number;
  iova: bigint;
  length: number;
  access: DmaAccess;
} {
  const { endpoint } = request;
  if (!Number.isInteger(endpoint) || endpoint < 0 || endpoint > 0xffff_ffff) {
    throw new VmmError('EINVAL', `endpoint must be a le32, got ${String(endpoint)}`);
  }
  const pasid = request.pasid ?? NO_PASID;
  if (pasid !== NO_PASID && (!Number.isInteger(pasid) || pasid < 0 || pasid > 0xf_ffff)) {
    throw new VmmError(
      'EINVAL',
      `pasid must be an integer from 0 to 2^20 - 1 (or omitted), got ${String(pasid)}`,
    );
  }
  const access = typeof request.access === 'string' ? ACCESS[request.access] : request.access;
  if (access !== DmaAccess.READ && access !== DmaAccess.WRITE && access !== DmaAccess.EXEC) {
    throw new VmmError('EINVAL', `access must be 'read', 'write' or 'exec', got ${String(request.access)}`);
  }
  const length = request.length ?? 1;
  if (!Number.isInteger(length) || length < 1 || length > MAX_DMA_LENGTH) {
    throw new VmmError('EINVAL', `length must be an integer from 1 to 2^32, got ${String(length)}`);
  }
  const iova = toU64(request.iova, 'iova');
  if (iova + BigInt(length) - 1n > U64_MAX) {
    throw new VmmError('ERANGE', `a DMA of ${length} bytes at ${iova} passes the end of the 64-bit space`);
  }
  return { endpoint, pasid, iova, length, access };
}

/** Splits a DMA into per-mapping segments (cold path: allocates the result). */
export function translateRange(
  translator: Translator,
  out: PageTranslation,
  request: TranslateRequest,
): DmaTranslation {
  const { endpoint, pasid, iova: start, length, access } = checkTranslateRequest(request);
  const segments: DmaSegment[] = [];
  let done = 0;
  // Each step covers at least one byte, so the loop ends after at most `length` steps; in
  // practice one step per mapping or page.
  while (done < length) {
    const iova = start + BigInt(done);
    if (!translator.translate(endpoint, pasid, lo32(iova), hi32(iova), access, out)) {
      const fault: DmaFault = { reason: out.reason, flags: out.flags, endpoint, address: iova };
      if (pasid !== NO_PASID) fault.pasid = pasid;
      if (out.vendorEvent !== null) fault.vendorEvent = out.vendorEvent;
      return { ok: false, fault };
    }
    const n = Math.min(out.length, length - done);
    const address = joinU64(out.paLo, out.paHi);
    const last = segments[segments.length - 1];
    // Adjacent pieces that continue each other physically are merged into one segment.
    if (last !== undefined && last.address + BigInt(last.length) === address && last.mmio === out.mmio) {
      last.length += n;
    } else {
      segments.push({ iova, address, length: n, mmio: out.mmio });
    }
    done += n;
  }
  return { ok: true, segments };
}
