/** Configuration shared by the two nested backends, and what they offer in PROBE. */
import { ErrorCode, type NestedFormatDescription, VmmError } from '@vmmkit/core';
import { IPS_BITS } from '../codec/cd.js';
import type { Smmuv3Features } from '../model/types.js';

export interface NestedBackendOptions {
  /** Output address size of the modelled SMMU (IDR5.OAS), in bits. Default 48. */
  oas?: number;
  /**
   * PASID bits offered for format 2 (IDR1.SSIDSIZE). Default 20: the PCIe PASID width, which
   * is also the SMMUv3 maximum; Linux then uses min(device PASID width, SSIDSIZE).
   */
  pasidBits?: number;
  /** SMMU features of the model behind every attached table (IOTLB size, granules …). */
  features?: Partial<Smmuv3Features>;
}

/** Page sizes of the three granules with their blocks: 4K|2M|1G, 16K|32M, 64K|512M. */
export const ARM_LPAE_PAGE_SIZES =
  0x4000_0000n | 0x2000_0000n | 0x200_0000n | 0x20_0000n | 0x1_0000n | 0x4000n | 0x1000n;

export function resolveBackendOptions(options: NestedBackendOptions): Required<NestedBackendOptions> {
  const oas = options.oas ?? 48;
  // Stage-1 input is at most 48 bits here (no VAX), and Linux never gives the SMMU more OAS than that.
  if (!IPS_BITS.includes(oas) || oas > 48) {
    throw new VmmError(ErrorCode.EINVAL, `oas must be one of 32, 36, 40, 42, 44, 48 bits, got ${oas}`);
  }
  const pasidBits = options.pasidBits ?? 20;
  if (!Number.isInteger(pasidBits) || pasidBits < 1 || pasidBits > 20) {
    throw new VmmError(ErrorCode.EINVAL, `pasidBits must be an integer from 1 to 20, got ${pasidBits}`);
  }
  return { oas, pasidBits, features: { ...options.features } };
}

export function describeFormat(
  format: number,
  kind: 'pasid-table' | 'page-table',
  options: Required<NestedBackendOptions>,
): NestedFormatDescription {
  const f = options.features;
  let mask = ARM_LPAE_PAGE_SIZES;
  if (f.granule4k === false) mask &= ~(0x4000_0000n | 0x20_0000n | 0x1000n);
  if (f.granule16k === false) mask &= ~(0x200_0000n | 0x4000n);
  if (f.granule64k === false) mask &= ~(0x2000_0000n | 0x1_0000n);
  return {
    format,
    kind,
    asidBits: f.asid16 === false ? 8 : 16,
    // PROTOCOL.md flags for format 2: STALL, BTM, HTTU — this model offers none.
    flags: 0,
    outputBits: options.oas,
    pasidBits: kind === 'pasid-table' ? options.pasidBits : 0,
    pageSizeMask: mask,
    inputBits: 48,
  };
}
