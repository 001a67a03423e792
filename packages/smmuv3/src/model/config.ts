/**
 * Host-side configuration of the SMMUv3 model: constructor options (the ID registers), the
 * stream table registers, and the checks on translation requests. These are API arguments
 * from the VMM, not guest input: a bad one is a `VmmError`, never an event.
 */
import { ErrorCode, VmmError } from '@vmmkit/core';
import { IPS_BITS } from '../codec/cd.js';
import type { Smmuv3Features, Smmuv3Options, StreamTableConfig, TranslateRequest } from './types.js';

export const DEFAULT_FEATURES: Smmuv3Features = {
  twoLevelCdTables: true,
  twoLevelStreamTables: true,
  asid16: true,
  granule4k: true,
  granule16k: true,
  granule64k: true,
  sidBits: 32,
  iotlbEntries: 4096,
};

/** IDR5.OAS, IDR1.SSIDSIZE and the other features, checked and defaulted. */
export function parseOptions(options: Smmuv3Options): {
  oas: number;
  ssidBits: number;
  features: Smmuv3Features;
} {
  if (options === undefined || options.memory === undefined) {
    throw new VmmError(ErrorCode.EINVAL, 'Smmuv3 needs { memory } (the guest memory it walks)');
  }
  const oas = options.oas ?? 48;
  if (!IPS_BITS.includes(oas)) {
    throw new VmmError(ErrorCode.EINVAL, `oas must be one of ${IPS_BITS.join(', ')} bits, got ${oas}`);
  }
  const ssidBits = options.ssidBits ?? 20;
  // IHI 0070 §6.3.2 IDR1.SSIDSIZE: 0 to 20 bits.
  if (!Number.isInteger(ssidBits) || ssidBits < 0 || ssidBits > 20) {
    throw new VmmError(ErrorCode.EINVAL, `ssidBits must be an integer from 0 to 20, got ${ssidBits}`);
  }
  const features = { ...DEFAULT_FEATURES, ...options.features };
  const entries = features.iotlbEntries;
  if (!Number.isInteger(entries) || entries < 0 || (entries & (entries - 1)) !== 0 || entries > 2 ** 24) {
    throw new VmmError(ErrorCode.EINVAL, `iotlbEntries must be 0 or a power of two ≤ 2^24, got ${entries}`);
  }
  // IHI 0070 §6.3.2 IDR1.SIDSIZE: 0 to 32 bits.
  if (!Number.isInteger(features.sidBits) || features.sidBits < 0 || features.sidBits > 32) {
    throw new VmmError(ErrorCode.EINVAL, `sidBits must be an integer from 0 to 32, got ${features.sidBits}`);
  }
  return { oas, ssidBits, features };
}

/** STRTAB_BASE and STRTAB_BASE_CFG as the SMMU uses them (the effective, aligned base). */
export function streamTableOf(
  config: StreamTableConfig,
  features: Readonly<Smmuv3Features>,
  oas: number,
): Required<StreamTableConfig> {
  const { base, log2Size, format } = config;
  const split = config.split ?? 8;
  if (!Number.isSafeInteger(base) || base < 0 || base % 64 !== 0 || base >= 2 ** oas) {
    throw new VmmError(ErrorCode.EINVAL, `stream table base ${base} must be 64-byte aligned and below 2^oas`);
  }
  // IHI 0070 §6.3.25 STRTAB_BASE_CFG.LOG2SIZE: at most IDR1.SIDSIZE.
  if (!Number.isInteger(log2Size) || log2Size < 0 || log2Size > features.sidBits) {
    throw new VmmError(
      ErrorCode.EINVAL,
      `log2Size ${log2Size} must be an integer from 0 to sidBits (${features.sidBits})`,
    );
  }
  if (format !== 'linear' && format !== '2-level') {
    throw new VmmError(ErrorCode.EINVAL, `format must be 'linear' or '2-level', got ${String(format)}`);
  }
  if (format === '2-level') {
    if (!features.twoLevelStreamTables) {
      throw new VmmError(ErrorCode.EINVAL, 'this SMMU has no two-level stream tables (features)');
    }
    // IHI 0070 §6.3.25 STRTAB_BASE_CFG.SPLIT: 6, 8 or 10 (4 KiB, 16 KiB, 64 KiB leaves).
    if (split !== 6 && split !== 8 && split !== 10) {
      throw new VmmError(ErrorCode.EINVAL, `split must be 6, 8 or 10, got ${split}`);
    }
  }
  // IHI 0070 §6.3.24 STRTAB_BASE.ADDR: the SMMU aligns the base itself, ignoring the low
  // ADDR bits: a linear table to its size, a two-level L1 table to max(64 bytes, its size).
  const tableBytes =
    format === 'linear' ? 64 * 2 ** log2Size : Math.max(64, 8 * 2 ** Math.max(log2Size - split, 0));
  return { base: base - (base % tableBytes), log2Size, format, split };
}

export function checkSid(sid: number, sidBits: number): void {
  if (!Number.isInteger(sid) || sid < 0 || sid >= 2 ** sidBits) {
    throw new VmmError(ErrorCode.EINVAL, `sid ${sid} must be an integer below 2^${sidBits}`);
  }
}

export function checkRequest(request: TranslateRequest, sidBits: number): void {
  checkSid(request.sid, sidBits);
  const { ssid, iova } = request;
  if (ssid !== undefined && (!Number.isInteger(ssid) || ssid < 0 || ssid >= 2 ** 20)) {
    throw new VmmError(ErrorCode.EINVAL, `ssid ${ssid} must be an integer below 2^20 (or absent)`);
  }
  if (!Number.isSafeInteger(iova) || iova < 0) {
    throw new VmmError(ErrorCode.EINVAL, `iova ${iova} must be a non-negative safe integer`);
  }
}
