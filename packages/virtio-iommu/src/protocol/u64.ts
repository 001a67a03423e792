import { VmmError } from '@vmmkit/core';

/** 2^32, the weight of the high half of a 64-bit value. */
export const TWO_POW_32 = 0x1_0000_0000;
export const U64_MAX = (1n << 64n) - 1n;

/** Whether `value` is a bigint in [0, 2^64). */
export function isU64(value: unknown): value is bigint {
  return typeof value === 'bigint' && value >= 0n && value <= U64_MAX;
}

/** Checks an API argument is a u64 (a bigint, or a non-negative safe integer), and returns it as a bigint. */
export function toU64(value: bigint | number, what: string): bigint {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new VmmError('EINVAL', `${what} must be a non-negative safe integer or a bigint, got ${value}`);
    }
    return BigInt(value);
  }
  if (!isU64(value)) {
    throw new VmmError('ERANGE', `${what} must lie in [0, 2^64 - 1], got ${String(value)}`);
  }
  return value;
}

/** Low 32 bits of a u64. */
export function lo32(value: bigint): number {
  return Number(value & 0xffff_ffffn);
}

/** High 32 bits of a u64. */
export function hi32(value: bigint): number {
  return Number((value >> 32n) & 0xffff_ffffn);
}

/** The u64 whose halves are `lo` and `hi`. */
export function joinU64(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** `hi * 2^32 + lo` as a number when it is a safe integer, else `-1`. */
export function safeFromHalves(lo: number, hi: number): number {
  return hi < 0x20_0000 ? hi * TWO_POW_32 + lo : -1;
}

/** Reads a le64 as a bigint (cold paths). */
export function getU64(view: DataView, offset: number): bigint {
  return view.getBigUint64(offset, true);
}

/** Writes a le64 from a bigint (cold paths). */
export function setU64(view: DataView, offset: number, value: bigint): void {
  view.setBigUint64(offset, BigInt.asUintN(64, value), true);
}
