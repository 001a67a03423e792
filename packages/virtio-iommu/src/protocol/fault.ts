import { FAULT_REPORT_SIZE, FaultFlag } from './constants.js';
import { getU64, setU64 } from './u64.js';

/**
 * The 24-byte fault report of the event queue (virtio 1.2 §5.13.7). With the nested extension
 * the PASID travels at offset 12 (upstream `reserved1`) under flag bit 9 (PROTOCOL.md), so an
 * unextended driver still reads every report.
 */
export const FaultOffset = { REASON: 0, FLAGS: 4, ENDPOINT: 8, PASID: 12, ADDRESS: 16 } as const;

export interface FaultReport {
  reason: number;
  flags: number;
  endpoint: number;
  /** Present when flag bit 9 (`F_PASID`) is set. */
  pasid?: number;
  /** Present when `F_ADDRESS` is set. */
  address?: bigint;
}

/**
 * Writes a report into `target` (24 bytes from `offset`) from 32-bit halves, without
 * allocating. `pasid` is written only when `flags` carries `F_PASID`.
 */
export function writeFaultReport(
  target: DataView,
  offset: number,
  reason: number,
  flags: number,
  endpoint: number,
  pasid: number,
  addressLo: number,
  addressHi: number,
): void {
  target.setUint32(offset, reason & 0xff, true);
  target.setUint32(offset + FaultOffset.FLAGS, flags >>> 0, true);
  target.setUint32(offset + FaultOffset.ENDPOINT, endpoint >>> 0, true);
  target.setUint32(offset + FaultOffset.PASID, (flags & FaultFlag.PASID) !== 0 ? pasid >>> 0 : 0, true);
  const hasAddress = (flags & FaultFlag.ADDRESS) !== 0;
  target.setUint32(offset + FaultOffset.ADDRESS, hasAddress ? addressLo >>> 0 : 0, true);
  target.setUint32(offset + FaultOffset.ADDRESS + 4, hasAddress ? addressHi >>> 0 : 0, true);
}

export function encodeFaultReport(report: FaultReport): Uint8Array {
  const bytes = new Uint8Array(FAULT_REPORT_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint8(FaultOffset.REASON, report.reason);
  view.setUint32(FaultOffset.FLAGS, report.flags >>> 0, true);
  view.setUint32(FaultOffset.ENDPOINT, report.endpoint >>> 0, true);
  view.setUint32(FaultOffset.PASID, (report.pasid ?? 0) >>> 0, true);
  setU64(view, FaultOffset.ADDRESS, report.address ?? 0n);
  return bytes;
}

/**
 * Parses a report as a driver must: `null` when shorter than 24 bytes or when reserved bytes
 * 1..3 are non-zero (virtio 1.2 §5.13.7.2: the driver MUST ignore such a report).
 */
export function decodeFaultReport(bytes: Uint8Array): FaultReport | null {
  if (bytes.length < FAULT_REPORT_SIZE) return null;
  if (bytes[1] !== 0 || bytes[2] !== 0 || bytes[3] !== 0) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const flags = view.getUint32(FaultOffset.FLAGS, true);
  const report: FaultReport = {
    reason: bytes[0]!,
    flags,
    endpoint: view.getUint32(FaultOffset.ENDPOINT, true),
  };
  if ((flags & FaultFlag.PASID) !== 0) report.pasid = view.getUint32(FaultOffset.PASID, true);
  if ((flags & FaultFlag.ADDRESS) !== 0) report.address = getU64(view, FaultOffset.ADDRESS);
  return report;
}
