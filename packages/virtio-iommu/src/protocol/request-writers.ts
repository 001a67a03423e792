/**
 * Allocation-free writers of the three requests a driver sends in bulk (MAP, UNMAP, INVALIDATE),
 * at the protocol module's offsets. The protocol module's `encodeMap`/`encodeUnmap`/
 * `encodeInvalidate` allocate a buffer per request; these write into a caller's reused view,
 * 64-bit fields as 32-bit halves, for drivers that send them in bulk.
 */
import { RequestSize, RequestType } from './constants.js';
import { InvalidateOffset, MapOffset, UnmapOffset } from './requests.js';

function clear(view: DataView, at: number, length: number): void {
  for (let i = 0; i < length; i += 4) view.setUint32(at + i, 0, true);
}

function setHalves(view: DataView, at: number, lo: number, hi: number): void {
  view.setUint32(at, lo >>> 0, true);
  view.setUint32(at + 4, hi >>> 0, true);
}

/** MAP readable part (36 bytes) at `at`; `virtEnd` inclusive. */
export function writeMapRequest(
  view: DataView,
  at: number,
  domain: number,
  startLo: number,
  startHi: number,
  endLo: number,
  endHi: number,
  physLo: number,
  physHi: number,
  flags: number,
): void {
  clear(view, at, RequestSize.MAP);
  view.setUint8(at, RequestType.MAP);
  view.setUint32(at + MapOffset.DOMAIN, domain >>> 0, true);
  setHalves(view, at + MapOffset.VIRT_START, startLo, startHi);
  setHalves(view, at + MapOffset.VIRT_END, endLo, endHi);
  setHalves(view, at + MapOffset.PHYS_START, physLo, physHi);
  view.setUint32(at + MapOffset.FLAGS, flags >>> 0, true);
}

/** UNMAP readable part (28 bytes) at `at`; `virtEnd` inclusive. */
export function writeUnmapRequest(
  view: DataView,
  at: number,
  domain: number,
  startLo: number,
  startHi: number,
  endLo: number,
  endHi: number,
): void {
  clear(view, at, RequestSize.UNMAP);
  view.setUint8(at, RequestType.UNMAP);
  view.setUint32(at + UnmapOffset.DOMAIN, domain >>> 0, true);
  setHalves(view, at + UnmapOffset.VIRT_START, startLo, startHi);
  setHalves(view, at + UnmapOffset.VIRT_END, endLo, endHi);
}

/** INVALIDATE readable part (60 bytes) at `at`. `archid`, `virtStart` and `nrPages` are safe integers. */
export function writeInvalidateRequest(
  view: DataView,
  at: number,
  granularity: number,
  caches: number,
  flags: number,
  domain: number,
  pasid: number,
  archid: number,
  virtStart: number,
  nrPages: number,
  granule: number,
): void {
  clear(view, at, RequestSize.INVALIDATE);
  view.setUint8(at, RequestType.INVALIDATE);
  view.setUint16(at + InvalidateOffset.GRANULARITY, granularity, true);
  view.setUint16(at + InvalidateOffset.CACHES, caches, true);
  view.setUint16(at + InvalidateOffset.FLAGS, flags, true);
  view.setUint32(at + InvalidateOffset.DOMAIN, domain >>> 0, true);
  view.setUint32(at + InvalidateOffset.PASID, pasid >>> 0, true);
  setHalves(view, at + InvalidateOffset.ARCHID, archid % 0x1_0000_0000, Math.floor(archid / 0x1_0000_0000));
  setHalves(
    view,
    at + InvalidateOffset.VIRT_START,
    virtStart % 0x1_0000_0000,
    Math.floor(virtStart / 0x1_0000_0000),
  );
  setHalves(
    view,
    at + InvalidateOffset.NR_PAGES,
    nrPages % 0x1_0000_0000,
    Math.floor(nrPages / 0x1_0000_0000),
  );
  view.setUint8(at + InvalidateOffset.GRANULE, granule);
}
