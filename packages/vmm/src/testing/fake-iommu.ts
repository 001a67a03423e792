import { type DmaAccess, NestedFaultReason, VmmError } from '@vmmkit/core';
import { DMA_PAGE_SIZE, type DmaPage, type DmaTranslator } from '../dma/translator.js';

/** A fault the fake IOMMU recorded: what a real one would put in a fault report. */
export interface FakeIommuFault {
  endpoint: number;
  pasid: number;
  iova: number;
  access: DmaAccess;
  reason: number;
}

/** Permission bits of a fake mapping: 1 read, 2 write. */
export const FakePerm = { READ: 1, WRITE: 2, RW: 3 } as const;

export interface FakeIommuOptions {
  /**
   * Offer `translatePages` (translation of page runs without fault reports), as the
   * virtio-iommu does, so devices take their batched path. Default false: page by page.
   */
  batched?: boolean;
}

/**
 * A page-granular IOMMU for tests of DMA-capable devices: explicit per (endpoint, PASID)
 * page maps, permission checks, and a list of the faults it reported.
 */
export class FakeIommu implements DmaTranslator {
  readonly name = 'fake';
  readonly faults: FakeIommuFault[] = [];
  translations = 0;
  readonly translatePages?: DmaTranslator['translatePages'];
  private readonly spaces = new Map<number, Map<number, number>>();

  constructor(options: FakeIommuOptions = {}) {
    if (options.batched === true) {
      this.translatePages = (endpoint, pasid, firstPage, count, access, pas) => {
        for (let i = 0; i < count; i++) {
          this.translations++;
          const pa = this.lookup(endpoint, pasid, firstPage + i, access);
          if (pa < 0) return i;
          pas[i] = pa;
        }
        return count;
      };
    }
  }

  private static key(endpoint: number, pasid: number): number {
    return endpoint * 2 ** 21 + (pasid + 1);
  }

  /** Maps `length` bytes (whole pages) at `iova` to guest-physical `pa`. */
  map(
    endpoint: number,
    pasid: number,
    iova: number,
    pa: number,
    length: number,
    perm: number = FakePerm.RW,
  ): void {
    if (iova % DMA_PAGE_SIZE !== 0 || pa % DMA_PAGE_SIZE !== 0 || length % DMA_PAGE_SIZE !== 0) {
      throw new VmmError('EINVAL', 'fake IOMMU maps whole 4 KiB pages');
    }
    const key = FakeIommu.key(endpoint, pasid);
    let space = this.spaces.get(key);
    if (!space) {
      space = new Map();
      this.spaces.set(key, space);
    }
    for (let off = 0; off < length; off += DMA_PAGE_SIZE) {
      // Entry: the PA page number times 4 plus the permission bits.
      space.set((iova + off) / DMA_PAGE_SIZE, ((pa + off) / DMA_PAGE_SIZE) * 4 + perm);
    }
  }

  unmap(endpoint: number, pasid: number, iova: number, length: number): void {
    const space = this.spaces.get(FakeIommu.key(endpoint, pasid));
    for (let off = 0; off < length; off += DMA_PAGE_SIZE) space?.delete((iova + off) / DMA_PAGE_SIZE);
  }

  translatePage(endpoint: number, pasid: number, iovaPage: number, access: DmaAccess, out: DmaPage): boolean {
    this.translations++;
    const pa = this.lookup(endpoint, pasid, iovaPage, access);
    if (pa >= 0) {
      out.pa = pa;
      return true;
    }
    const reason = pa === MISSING ? NestedFaultReason.MAPPING : NestedFaultReason.PERMISSION;
    out.fault = reason;
    this.faults.push({ endpoint, pasid, iova: iovaPage * DMA_PAGE_SIZE, access, reason });
    return false;
  }

  /** The page's guest-physical address, or MISSING / DENIED. */
  private lookup(endpoint: number, pasid: number, iovaPage: number, access: DmaAccess): number {
    const entry = this.spaces.get(FakeIommu.key(endpoint, pasid))?.get(iovaPage);
    if (entry === undefined) return MISSING;
    const needed = access === 1 ? FakePerm.WRITE : FakePerm.READ;
    return (entry & needed) !== 0 ? Math.floor(entry / 4) * DMA_PAGE_SIZE : DENIED;
  }
}

const MISSING = -1;
const DENIED = -2;
