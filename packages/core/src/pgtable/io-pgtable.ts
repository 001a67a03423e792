import type { GuestMemory } from '../memory/guest-memory.js';
import type { PageAllocator } from '../memory/page-allocator.js';

/** Mapping protections, with Linux's `IOMMU_*` bit values. */
export const IommuProt = {
  READ: 1 << 0,
  WRITE: 1 << 1,
  /** Cacheable, coherent memory. */
  CACHE: 1 << 2,
  NOEXEC: 1 << 3,
  /** Device memory (MMIO). */
  MMIO: 1 << 4,
  PRIV: 1 << 5,
} as const;

/** Accumulates the range freed by unmaps so one TLB flush covers them (Linux `iommu_iotlb_gather`). */
export interface IotlbGather {
  start: number;
  end: number;
  pgsize: number;
}

export function createIotlbGather(): IotlbGather {
  return { start: Number.POSITIVE_INFINITY, end: 0, pgsize: 0 };
}

/**
 * TLB maintenance the page-table code asks of its user (Linux `iommu_flush_ops`). Formats call
 * them as methods (`cfg.tlb.flushWalk(...)`), so an implementation may be a class instance.
 */
export interface IoPgtableFlushOps {
  /** Invalidate every translation of this table. */
  flushAll(): void;
  /** Invalidate leaf and table (walk cache) entries for `[iova, iova + size)`, in steps of `granule`. */
  flushWalk(iova: number, size: number, granule: number): void;
  /** Queue the invalidation of one leaf of `granule` bytes at `iova`, e.g. into `gather`. */
  addPage(gather: IotlbGather, iova: number, granule: number): void;
}

/**
 * Per-vendor configuration a format produces or consumes, keyed by vendor name. Vendors extend it
 * by declaration merging, e.g. `interface IoPgtableVendorConfigs { arm: ArmLpaeS1Cfg }`.
 */
// biome-ignore lint/suspicious/noEmptyInterface: extended by vendor packages through declaration merging
export interface IoPgtableVendorConfigs {}

export interface IoPgtableCfg {
  /** Input address size in bits. */
  ias: number;
  /** Output address size in bits. */
  oas: number;
  /** Bitmap of supported page and block sizes; a format restricts it to what it supports. */
  pgsizeBitmap: number;
  /** Whether the walker snoops CPU caches (no cache maintenance needed). */
  coherentWalk: boolean;
  tlb: IoPgtableFlushOps;
  /** Memory the tables are written to, and the allocator their pages come from. */
  memory: GuestMemory;
  allocator: PageAllocator;
  /** Vendor output (register values a format computed in `alloc`) and input. */
  vendor: Partial<IoPgtableVendorConfigs>;
}

export interface IoPgtableOps {
  /**
   * Maps `[iova, iova + size)` to `[pa, pa + size)`. `size` must be a sum of supported page sizes
   * and both addresses aligned to the smallest. Throws `EEXIST` over an existing mapping,
   * `EINVAL` for misaligned or out-of-range arguments, `ENOMEM` when table pages run out.
   */
  map(iova: number, pa: number, size: number, prot: number): void;
  /** Unmaps `[iova, iova + size)`; returns the bytes unmapped (0 when nothing was mapped there). */
  unmap(iova: number, size: number, gather?: IotlbGather): number;
  /** The output address `iova` maps to, or `null` when it is unmapped. */
  iovaToPhys(iova: number): number | null;
  /** Frees every table page. The ops object must not be used afterwards. */
  free(): void;
  readonly cfg: IoPgtableCfg;
}

/** A page-table format a plugin registers (Linux `io_pgtable_init_fns`). */
export interface IoPgtableFormat {
  /** Unique name, e.g. `arm-lpae-s1`. */
  readonly name: string;
  /** Vendor that provides it, e.g. `arm`. */
  readonly vendor: string;
  /** Builds a table; may restrict `cfg.pgsizeBitmap` and fill `cfg.vendor`. */
  alloc(cfg: IoPgtableCfg, cookie?: unknown): IoPgtableOps;
  /**
   * How a table of this format is handed to a paravirtual IOMMU without PASIDs: the virtio-iommu
   * table format number and bytes 16..83 of ATTACH_TABLE (the le16 format, then its payload).
   */
  readonly attachDescriptor?: (cfg: IoPgtableCfg, asid: number) => { format: number; payload: Uint8Array };
  /**
   * The virtio-iommu table format number `attachDescriptor` builds (1 Arm LPAE, 3 virt, or a
   * plugin's own). With it a driver picks the matching PROBE offer of an endpoint that offers
   * several page-table formats before it builds a table; without it the caller must say which.
   */
  readonly virtioIommuFormat?: number;
}
