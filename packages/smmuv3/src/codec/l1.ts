/**
 * The 8-byte level-1 descriptors of two-level tables (IHI 0070 §5.1 and §5.3).
 *
 * - L1 stream-table descriptor (L1STD): Span [4:0], L2Ptr [51:6] (Linux `STRTAB_L1_DESC_*`).
 * - L1 context-descriptor descriptor (L1CD): V [0], L2Ptr [51:12] (Linux `CTXDESC_L1_DESC_*`).
 *
 * Bits outside the named fields are kept in `res0` so every 64-bit pattern round-trips; this
 * includes L2Ptr bits [55:52], which only a 56-bit PA would use (IHI 0070 §5.1, §5.3).
 */
import { ErrorCode, VmmError } from '@vmmkit/core';
import { getDword, getField, getFlag, readWords, setDword, setField, setFlag, writeWords } from './bits.js';

export const L1_DESC_SIZE = 8;

export interface L1StreamDesc {
  /** Span [4:0]: the L2 table holds 2^(Span−1) STEs; 0 = invalid. */
  span: number;
  /** L2Ptr [51:6]: address of the level-2 stream table. */
  l2ptr: number;
  /** Bits [5:5] and [63:52], in place. */
  res0: bigint;
}

export interface L1CdDesc {
  /** V [0]. */
  valid: boolean;
  /** L2Ptr [51:12]: address of the leaf CD table (4 KiB aligned). */
  l2ptr: number;
  /** Bits [11:1] and [63:52], in place. */
  res0: bigint;
}

const L1STD_RES0 = 0xfff0_0000_0000_0020n;
const L1CD_RES0 = 0xfff0_0000_0000_0ffen;

function checkedRes0(res0: bigint | undefined, mask: bigint, what: string): bigint {
  const value = res0 ?? 0n;
  if ((value & ~mask) !== 0n) {
    throw new VmmError(ErrorCode.ERANGE, `${what}.res0 may only hold the reserved bits of the descriptor`);
  }
  return value;
}

function checkAligned(address: number, align: number, what: string): void {
  if (address % align !== 0) {
    throw new VmmError(ErrorCode.ERANGE, `${what} = ${address} must be ${align}-byte aligned`, {
      field: what,
    });
  }
}

export function encodeL1StreamDesc(desc: Partial<L1StreamDesc>, out?: Uint8Array): Uint8Array {
  const w = new Uint32Array(2);
  const l2ptr = desc.l2ptr ?? 0;
  checkAligned(l2ptr, 64, 'l2ptr');
  setDword(w, 0, checkedRes0(desc.res0, L1STD_RES0, 'L1StreamDesc'), 'res0');
  setField(w, 0, 0, 5, desc.span ?? 0, 'span');
  setField(w, 0, 6, 46, l2ptr / 64, 'l2ptr');
  return writeWords(w, out, 'an L1 stream-table descriptor');
}

export function decodeL1StreamDesc(bytes: Uint8Array, offset = 0): L1StreamDesc {
  const w = readWords(bytes, 1, offset, 'an L1 stream-table descriptor');
  return {
    span: getField(w, 0, 0, 5),
    l2ptr: getField(w, 0, 6, 46) * 64,
    res0: getDword(w, 0) & L1STD_RES0,
  };
}

export function encodeL1CdDesc(desc: Partial<L1CdDesc>, out?: Uint8Array): Uint8Array {
  const w = new Uint32Array(2);
  const l2ptr = desc.l2ptr ?? 0;
  checkAligned(l2ptr, 4096, 'l2ptr');
  setDword(w, 0, checkedRes0(desc.res0, L1CD_RES0, 'L1CdDesc'), 'res0');
  setFlag(w, 0, 0, desc.valid);
  setField(w, 0, 12, 40, l2ptr / 4096, 'l2ptr');
  return writeWords(w, out, 'an L1 context-descriptor descriptor');
}

export function decodeL1CdDesc(bytes: Uint8Array, offset = 0): L1CdDesc {
  const w = readWords(bytes, 1, offset, 'an L1 context-descriptor descriptor');
  return {
    valid: getFlag(w, 0, 0),
    l2ptr: getField(w, 0, 12, 40) * 4096,
    res0: getDword(w, 0) & L1CD_RES0,
  };
}
