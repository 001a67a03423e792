import { type DmaAccess, MAX_GPA, NestedFaultReason } from '@vmmkit/core';

/** The granule DMA is translated in: every IOMMU format of vmmkit maps at least 4 KiB pages. */
export const DMA_PAGE_SIZE = 0x1000;
export const DMA_PAGE_SHIFT = 12;

/** Filled by a translator; one per device, reused for every page (no allocation per page). */
export interface DmaPage {
  /** Guest-physical address of the start of the 4 KiB page. */
  pa: number;
  /** `NestedFaultReason` when the translation failed. */
  fault: number;
}

export function createDmaPage(): DmaPage {
  return { pa: 0, fault: 0 };
}

/**
 * How a DMA-capable endpoint reaches memory: the IOMMU's page-granular translate. The IOVA is
 * passed as a 4 KiB page number (IOVA / 4096), which is exact for the whole 64-bit IOVA space
 * as a JS number, so the hot path needs no BigInt. On failure the IOMMU itself reports the
 * fault (a virtio-iommu fault report on its event queue); the device only stops.
 */
export interface DmaTranslator {
  readonly name: string;
  /** `pasid` is `NO_PASID` (-1) for a transaction without a substream. */
  translatePage(endpoint: number, pasid: number, iovaPage: number, access: DmaAccess, out: DmaPage): boolean;
}

/** No IOMMU (`--iommu none`): IOVA = guest-physical address, up to the 52-bit GPA limit. */
export const identityTranslator: DmaTranslator = {
  name: 'none',
  translatePage(_endpoint, _pasid, iovaPage, _access, out) {
    const pa = iovaPage * DMA_PAGE_SIZE;
    if (pa >= MAX_GPA) {
      out.fault = NestedFaultReason.OOR_ADDRESS;
      return false;
    }
    out.pa = pa;
    return true;
  },
};
