/**
 * TLB and configuration-cache maintenance of nested domains, as INVALIDATE requests
 * (docs/PROTOCOL.md; the DRAFT-B driver's usage in virtio-iommu-wire §2.8). The io-pgtable
 * callbacks queue requests into one batch; the domain sends the batch once its operation is done,
 * so an unmap that clears many pages costs one notification.
 */
import { createIotlbGather, type IoPgtableFlushOps, type IotlbGather } from '@vmmkit/core';
import { InvalidateCache, InvalidateFlag, InvalidateGranularity } from '../protocol/constants.js';
import type { IommuBatch } from './batch.js';

/** Whom an invalidation is for: a domain, optionally one PASID, and the ASID of its tables. */
export interface InvalidationTarget {
  domain: number;
  /** `undefined` for a single page table without PASIDs. */
  pasid?: number;
  asid: number;
}

/**
 * Queues INVALIDATE requests for one domain and sends them together. Nothing is queued while no
 * endpoint is attached: the device then holds no cached state for the domain (and would answer
 * S_NOENT for an unknown domain).
 */
export class InvalidationQueue {
  /** Made by the first request queued: many domains are built and torn down without one. */
  private queued: IommuBatch | null = null;

  constructor(
    /** Where batches come from (the driver). */
    private readonly source: { batch(): IommuBatch },
    /** Whether the domain exists on the device (at least one endpoint attached). */
    private readonly live: () => boolean,
  ) {}

  get pending(): number {
    return this.queued === null ? 0 : this.queued.length;
  }

  private get batch(): IommuBatch {
    if (this.queued === null) this.queued = this.source.batch();
    return this.queued;
  }

  /** Every cached translation of the target's tables: its PASID (or the whole domain) in the IOTLB. */
  all(target: InvalidationTarget): void {
    if (!this.live()) return;
    const withPasid = target.pasid !== undefined;
    this.batch.invalidate({
      granularity: withPasid ? InvalidateGranularity.PASID : InvalidateGranularity.DOMAIN,
      caches: InvalidateCache.IOTLB,
      flags: (withPasid ? InvalidateFlag.PASID : 0) | InvalidateFlag.ARCHID,
      domain: target.domain,
      pasid: target.pasid ?? 0,
      archid: target.asid,
      virtStart: 0,
      nrPages: 0,
      granule: 0,
    });
  }

  /**
   * `[iova, iova + size)` in steps of `granule`; `leaf` when only leaf entries changed (the walk
   * caches may be kept). The page count is rounded up so the range is never under-invalidated
   * (virtio-iommu-wire pitfall 14).
   */
  range(target: InvalidationTarget, iova: number, size: number, granule: number, leaf: boolean): void {
    if (!this.live() || size <= 0) return;
    const withPasid = target.pasid !== undefined;
    this.batch.invalidate({
      granularity: InvalidateGranularity.VA,
      caches: InvalidateCache.IOTLB,
      flags:
        (withPasid ? InvalidateFlag.PASID : 0) | InvalidateFlag.ARCHID | (leaf ? InvalidateFlag.LEAF : 0),
      domain: target.domain,
      pasid: target.pasid ?? 0,
      archid: target.asid,
      virtStart: iova - (iova % granule),
      nrPages: Math.ceil((iova + size - (iova - (iova % granule))) / granule),
      granule: Math.log2(granule),
    });
  }

  /** The table entry (context descriptor) of `pasid` changed: its configuration cache. */
  pasidEntry(domain: number, pasid: number, leaf: boolean): void {
    if (!this.live()) return;
    this.batch.invalidate({
      granularity: InvalidateGranularity.PASID,
      caches: InvalidateCache.PASID,
      flags: InvalidateFlag.PASID | (leaf ? InvalidateFlag.LEAF : 0),
      domain,
      pasid,
      archid: 0,
      virtStart: 0,
      nrPages: 0,
      granule: 0,
    });
  }

  /**
   * Sends everything queued (one notification per queue-full); throws the first refused request.
   * Nothing queued sends nothing: most table edits before the first attach queue nothing.
   */
  flush(): void {
    if (this.pending === 0) return;
    this.batch.submitOrThrow();
  }

  /**
   * The io-pgtable callbacks of one table: walks and flush-all are queued as they come; leaf
   * pages accumulate in the caller's gather and are queued as one range when the gather must
   * change granule or would become discontiguous (Linux `iommu_iotlb_gather_add_page`).
   */
  flushOps(target: InvalidationTarget): IoPgtableFlushOps {
    return new TableFlushOps(this, target);
  }

  /** Queues the leaf range a gather holds (end exclusive) and empties it. */
  gathered(target: InvalidationTarget, gather: IotlbGather): void {
    if (gather.pgsize !== 0 && gather.end > gather.start) {
      this.range(target, gather.start, gather.end - gather.start, gather.pgsize, true);
    }
    const empty = createIotlbGather();
    gather.start = empty.start;
    gather.end = empty.end;
    gather.pgsize = empty.pgsize;
  }
}

/**
 * The flush callbacks of one table, as a class: a PASID table builds one per PASID, and methods
 * cost nothing per instance where three closures each cost an allocation (and, under loaders
 * that keep function names, a defineProperty).
 */
class TableFlushOps implements IoPgtableFlushOps {
  constructor(
    private readonly queue: InvalidationQueue,
    private readonly target: InvalidationTarget,
  ) {}

  flushAll(): void {
    this.queue.all(this.target);
  }

  flushWalk(iova: number, size: number, granule: number): void {
    this.queue.range(this.target, iova, size, granule, false);
  }

  addPage(gather: IotlbGather, iova: number, granule: number): void {
    const end = iova + granule;
    if (gather.pgsize !== 0 && (gather.pgsize !== granule || end < gather.start || iova > gather.end)) {
      this.queue.gathered(this.target, gather);
    }
    gather.pgsize = granule;
    gather.start = Math.min(gather.start, iova);
    gather.end = Math.max(gather.end, end);
  }
}
