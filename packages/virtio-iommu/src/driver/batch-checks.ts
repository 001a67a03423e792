/** Argument checks of the batch, and the report of accepted MAP/UNMAP to an observer. */
import { hex, VmmError } from '@vmmkit/core';
import {
  INVALIDATE_CACHES_MASK,
  InvalidateFlag,
  InvalidateGranularity,
  RequestType,
  Status,
} from '../protocol/constants.js';
import { MapOffset, UnmapOffset } from '../protocol/requests.js';
import { SLOT_SIZE } from './request-ring.js';

/** Told of every MAP and UNMAP the device accepted (the driver keeps mappings with it). */
export interface MappingObserver {
  mapped(domain: number, start: bigint, end: bigint, phys: bigint, flags: number): void;
  unmapped(domain: number, start: bigint, end: bigint): void;
}

/** An INVALIDATE as the nested code queues it; 64-bit fields are safe integers. */
export interface InvalidateArgs {
  granularity: number;
  caches: number;
  flags: number;
  domain: number;
  pasid: number;
  archid: number;
  virtStart: number;
  nrPages: number;
  granule: number;
}

export function checkU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new VmmError('EINVAL', `${what} must be an integer from 0 to 2^32 - 1, got ${String(value)}`);
  }
}

/** Checks INVALIDATE fields against PROTOCOL.md before anything is queued. */
export function checkInvalidateArgs(r: InvalidateArgs): void {
  if (
    r.granularity !== InvalidateGranularity.DOMAIN &&
    r.granularity !== InvalidateGranularity.PASID &&
    r.granularity !== InvalidateGranularity.VA
  ) {
    throw new VmmError(
      'EINVAL',
      `INVALIDATE granularity ${String(r.granularity)} is not DOMAIN (1), PASID (2) or VA (4)`,
    );
  }
  if (!Number.isInteger(r.caches) || r.caches <= 0 || (r.caches & ~INVALIDATE_CACHES_MASK) !== 0) {
    throw new VmmError(
      'EINVAL',
      `INVALIDATE caches ${String(r.caches)} must name IOTLB (1), DEV_IOTLB (2) and/or PASID (4)`,
    );
  }
  if (!Number.isInteger(r.granule) || r.granule < 0 || r.granule > 63) {
    throw new VmmError(
      'EINVAL',
      `INVALIDATE granule is log2 of a page size (0..63), got ${String(r.granule)}`,
    );
  }
  checkU32(r.domain, 'domain');
  checkU32(r.pasid, 'pasid');
  for (const [name, value] of [
    ['archid', r.archid],
    ['virtStart', r.virtStart],
    ['nrPages', r.nrPages],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new VmmError('EINVAL', `INVALIDATE ${name} must be a non-negative safe integer, got ${value}`);
    }
  }
  if ((r.flags & ~(InvalidateFlag.PASID | InvalidateFlag.ARCHID | InvalidateFlag.LEAF)) !== 0) {
    throw new VmmError('EINVAL', `INVALIDATE flags ${hex(r.flags)} use undefined bits`);
  }
}

/** Hands every accepted MAP/UNMAP to the observer, fields read back from the staged bytes. */
export function reportAccepted(
  view: DataView,
  count: number,
  statuses: Uint8Array,
  observer: MappingObserver,
): void {
  const u64 = (at: number) =>
    (BigInt(view.getUint32(at + 4, true)) << 32n) | BigInt(view.getUint32(at, true));
  for (let i = 0; i < count; i++) {
    if (statuses[i] !== Status.OK) continue;
    const at = i * SLOT_SIZE;
    const type = view.getUint8(at);
    if (type === RequestType.MAP) {
      observer.mapped(
        view.getUint32(at + MapOffset.DOMAIN, true),
        u64(at + MapOffset.VIRT_START),
        u64(at + MapOffset.VIRT_END),
        u64(at + MapOffset.PHYS_START),
        view.getUint32(at + MapOffset.FLAGS, true),
      );
    } else if (type === RequestType.UNMAP) {
      observer.unmapped(
        view.getUint32(at + UnmapOffset.DOMAIN, true),
        u64(at + UnmapOffset.VIRT_START),
        u64(at + UnmapOffset.VIRT_END),
      );
    }
  }
}
