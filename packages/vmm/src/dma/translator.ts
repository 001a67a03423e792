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
  /**
   * Optional: translates up to `count` consecutive pages from `firstPage` into `pas` (the
   * guest-physical address of each page, from index 0) and returns how many translated,
   * stopping at the first page that does not. It reports no fault: a device asks for that page
   * again with `translatePage` when its DMA reaches it, so faults arrive in the order the device
   * meets them and a page it never reaches is never reported. One call per run of pages is what
   * lets an engine copy at nearly memory speed.
   */
  translatePages?(
    endpoint: number,
    pasid: number,
    firstPage: number,
    count: number,
    access: DmaAccess,
    pas: Float64Array,
  ): number;
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
  translatePages(_endpoint, _pasid, firstPage, count, _access, pas) {
    for (let i = 0; i < count; i++) {
      const pa = (firstPage + i) * DMA_PAGE_SIZE;
      if (pa >= MAX_GPA) return i;
      pas[i] = pa;
    }
    return count;
  },
};
