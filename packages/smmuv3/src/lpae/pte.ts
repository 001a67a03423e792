/**
 * VMSAv8-64 stage-1 descriptors as two 32-bit halves (lo = bits [31:0], hi = bits [63:32]), so
 * map/unmap/walk never need BigInt. Bit positions: Arm ARM D8.3 / Linux io-pgtable-arm.c
 * `ARM_LPAE_PTE_*`.
 */
import { IommuProt } from '@vmmkit/core';
import { MairIndex, Shareability } from './geometry.js';

/** Bits [1:0]: 0b11 = table (levels 0–2) or page (level 3); 0b01 = block (levels 1–2). */
export const PTE_VALID = 1 << 0;
export const PTE_TYPE_MASK = 0b11;
export const PTE_TYPE_TABLE = 0b11;
export const PTE_TYPE_PAGE = 0b11;
export const PTE_TYPE_BLOCK = 0b01;
export const PTE_ATTRINDX_SHIFT = 2;
export const PTE_NS = 1 << 5;
/** AP[1]: EL0 (unprivileged) access allowed. */
export const PTE_AP_UNPRIV = 1 << 6;
/** AP[2]: read-only. */
export const PTE_AP_RDONLY = 1 << 7;
export const PTE_SH_SHIFT = 8;
/** Access flag: Linux sets it on every leaf so the walker never takes an access-flag fault. */
export const PTE_AF = 1 << 10;
/** Not global: the entry is tagged with the ASID. */
export const PTE_NG = 1 << 11;
/** UXN | PXN, bits [54:53] = bits [22:21] of the high half. */
export const PTE_HI_XN = 0b11 << 21;
/** Output address bits [47:12]: [31:12] of lo, [15:0] of hi. */
export const PTE_LO_ADDR_MASK = 0xffff_f000;
export const PTE_HI_ADDR_MASK = 0xffff;

const TWO_32 = 2 ** 32;

/** The attribute halves of a leaf for IOMMU_* `prot` (Linux `arm_lpae_prot_to_pte`, stage 1, current kernels). */
export function protToPte(prot: number): { lo: number; hi: number } {
  let lo = PTE_NG | PTE_AF;
  if ((prot & IommuProt.WRITE) === 0 && (prot & IommuProt.READ) !== 0) lo |= PTE_AP_RDONLY;
  if ((prot & IommuProt.PRIV) === 0) lo |= PTE_AP_UNPRIV;
  if ((prot & IommuProt.MMIO) !== 0) lo |= MairIndex.DEV << PTE_ATTRINDX_SHIFT;
  else if ((prot & IommuProt.CACHE) !== 0) lo |= MairIndex.CACHE << PTE_ATTRINDX_SHIFT;
  // Non-cacheable memory is only coherent with outer-shareable observers.
  lo |= ((prot & IommuProt.CACHE) !== 0 ? Shareability.INNER : Shareability.OUTER) << PTE_SH_SHIFT;
  const hi = (prot & IommuProt.NOEXEC) !== 0 ? PTE_HI_XN : 0;
  return { lo: lo >>> 0, hi };
}

/** Low half of the output-address field of `pa` (pa must be 4 KiB aligned). */
export function addrLo(pa: number): number {
  return (pa % TWO_32) & PTE_LO_ADDR_MASK;
}

/** High half of the output-address field of `pa`. */
export function addrHi(pa: number): number {
  return Math.floor(pa / TWO_32) & PTE_HI_ADDR_MASK;
}

/** Output address [47:12] of a descriptor. */
export function pteAddr(lo: number, hi: number): number {
  return (hi & PTE_HI_ADDR_MASK) * TWO_32 + ((lo & PTE_LO_ADDR_MASK) >>> 0);
}
