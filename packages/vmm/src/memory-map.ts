import { BANK_ALIGN, hex, MAX_GPA, type PageRegion, VmmError } from '@vmmkit/core';

/** One RAM bank of the machine. */
export interface RamBankSpec {
  gpa: number;
  size: number;
}

/** RAM as a size (one bank at `DEFAULT_RAM_BASE`) or explicit banks at chosen addresses. */
export type MemorySpec = number | { banks: readonly RamBankSpec[] };

/** Where RAM starts by default: 2 GiB, as on Arm's `virt` machine and kvmtool's arm64 layout. */
export const DEFAULT_RAM_BASE = 0x8000_0000;
/** Where device windows start by default (below RAM, in the first 2 GiB of the map). */
export const DEFAULT_MMIO_BASE = 0x0a00_0000;
/** Device windows are page aligned so no two devices share a page (and an IOMMU could map one). */
export const MMIO_WINDOW_ALIGN = 0x1000;

export function ramBanksFrom(spec: MemorySpec): RamBankSpec[] {
  const banks = typeof spec === 'number' ? [{ gpa: DEFAULT_RAM_BASE, size: spec }] : [...(spec?.banks ?? [])];
  if (banks.length === 0) {
    throw new VmmError(
      'EINVAL',
      'memory needs at least one RAM bank: pass a size or { banks: [{ gpa, size }] }',
    );
  }
  for (const { gpa, size } of banks) {
    if (!Number.isSafeInteger(size) || size <= 0 || size % BANK_ALIGN !== 0) {
      throw new VmmError('EINVAL', `RAM bank size ${String(size)} must be a positive multiple of 4 KiB`);
    }
    if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa % BANK_ALIGN !== 0 || gpa + size > MAX_GPA) {
      throw new VmmError(
        'EINVAL',
        `RAM bank address ${String(gpa)} must be 4 KiB aligned and the bank must end below 2^52`,
      );
    }
  }
  return banks.map(({ gpa, size }) => ({ gpa, size }));
}

/** Hands out page-aligned device windows upwards from a base, or checks fixed ones. */
export class MmioWindowAllocator {
  constructor(private next: number) {
    if (!Number.isSafeInteger(next) || next < 0 || next % MMIO_WINDOW_ALIGN !== 0) {
      throw new VmmError('EINVAL', `MMIO base ${String(next)} must be a 4 KiB aligned address`);
    }
  }

  allocate(size: number, fixed?: number): number {
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new VmmError('EINVAL', `an MMIO window needs a positive size, got ${String(size)}`);
    }
    if (fixed !== undefined) {
      if (!Number.isSafeInteger(fixed) || fixed < 0 || fixed % MMIO_WINDOW_ALIGN !== 0) {
        throw new VmmError('EINVAL', `MMIO window address ${String(fixed)} must be 4 KiB aligned`);
      }
      return fixed;
    }
    const base = this.next;
    this.next += Math.ceil(size / MMIO_WINDOW_ALIGN) * MMIO_WINDOW_ALIGN;
    return base;
  }
}

/** Splits a region into equal page-aligned slices, one per vCPU, so their allocators never overlap. */
export function heapSlices(region: PageRegion, count: number): PageRegion[] {
  const pages = Math.floor(region.size / BANK_ALIGN / count);
  if (pages < 1) {
    throw new VmmError(
      'ENOMEM',
      `guest heap ${hex(region.base)}+${hex(region.size)} is too small for ${count} vCPUs (one page each at least)`,
    );
  }
  return Array.from({ length: count }, (_, i) => ({
    base: region.base + i * pages * BANK_ALIGN,
    size: pages * BANK_ALIGN,
  }));
}
