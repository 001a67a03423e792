/**
 * Nested attach of a PASID table (docs/PROTOCOL.md ATTACH_TABLE format 2 and friends): the guest
 * builds the table with the seed's library (`registerPasidTable`, `alloc`, `prepare`, `write`),
 * one io-pgtable per PASID, and hands the table to the device. Vendor-agnostic: the vendor and
 * the page-table format come from the container by name.
 */
import {
  type IoPgtableFormat,
  type IoPgtableOps,
  type IoPgtableRegistry,
  type NestedFormatDescription,
  type PasidTable,
  type PasidTableLibrary,
  TOKENS,
  VmmError,
} from '@vmmkit/core';
import type { VirtioIommuDriver } from './driver.js';
import { IdAllocator } from './id-allocator.js';
import {
  declaredTableFormat,
  NestedTableBase,
  type PgtableGeometry,
  type PgtableGeometryOptions,
  pgtableCfg,
  pgtableGeometry,
  pickFormat,
  smallestPage,
} from './nested-common.js';
import type { InvalidationTarget } from './nested-invalidation.js';

export interface AttachPasidTableOptions extends PgtableGeometryOptions {
  /** PASID-table format registered in the container (`arm-smmu-v3`, or a vendor name like `arm`). */
  pasidTableFormat: string;
  /** io-pgtable format of each PASID's tables (`arm-lpae-s1`). */
  pgtableFormat: string;
  /**
   * virtio-iommu table format number to use when the endpoint offers several PASID-table formats
   * (default: the number the PASID-table format declares, if it does).
   */
  tableFormat?: number;
  /** Capabilities for the vendor (`PasidTableDevice.features`), over `ssidBits`/`asidBits` from PROBE. */
  deviceFeatures?: Record<string, number | boolean>;
  /** Vendor options placed in the table's `cfg.vendor` before `alloc`, e.g. `{ arm: { s1dss: 2 } }`. Opaque here. */
  vendorConfig?: Record<string, unknown>;
  /** PASIDs to install right after attaching. */
  pasids?: readonly number[];
}

interface PasidContext {
  ops: IoPgtableOps;
  target: InvalidationTarget;
}

/** A domain whose endpoints translate through a guest PASID table. */
export class NestedPasidDomain extends NestedTableBase {
  readonly table: PasidTable;
  /** Errors met while undoing a failed `addPasid` (the device may then hold a stale entry). */
  readonly cleanupFailures: unknown[] = [];
  private readonly contexts = new Map<number, PasidContext>();
  private readonly asids: IdAllocator | null;
  /** 2^pasidBits, computed once (`2 **` of a variable is a call). */
  private readonly pasidLimit: number;
  /** The io-pgtable format and geometry of every PASID's tables, resolved by the first `addPasid`. */
  private pgtableFormat: IoPgtableFormat | null = null;
  private geometry: PgtableGeometry | null = null;

  constructor(
    driver: VirtioIommuDriver,
    domain: number,
    description: NestedFormatDescription,
    private readonly options: AttachPasidTableOptions,
  ) {
    super(driver, domain, description);
    const library = driver.container!.get<PasidTableLibrary>(TOKENS.PasidTableLibrary);
    const dev = {
      name: `virtio-iommu domain ${domain}`,
      memory: driver.memory,
      allocator: driver.allocator,
      features: {
        ssidBits: description.pasidBits,
        asidBits: description.asidBits,
        ...options.deviceFeatures,
      },
    };
    // The consumer sync: a changed table entry becomes INVALIDATE (PASID granularity, PASID cache).
    this.table = library.registerPasidTable(options.pasidTableFormat, dev, this, {
      sync: (_cookie, ssid, leaf) => {
        this.invalidations.pasidEntry(this.domain, ssid, leaf);
        this.invalidations.flush();
      },
    });
    Object.assign(this.table.cfg.vendor, options.vendorConfig ?? {});
    this.pasidLimit = 2 ** description.pasidBits;
    this.asids = description.asidBits > 0 ? new IdAllocator(1, 2 ** description.asidBits - 1, 'ASID') : null;
  }

  /** PASIDs installed. */
  get pasids(): number[] {
    return [...this.contexts.keys()].sort((a, b) => a - b);
  }

  /** The io-pgtable of `pasid`, to map and unmap directly (then call `flush()`), or through `map`/`unmap`. */
  pgtable(pasid: number): IoPgtableOps {
    return this.context(pasid).ops;
  }

  /**
   * Builds the tables of `pasid` (an io-pgtable with the endpoint's geometry), prepares its entry
   * and writes it into the PASID table; the vendor's write syncs through INVALIDATE.
   */
  addPasid(pasid: number): IoPgtableOps {
    if (this.contexts.has(pasid))
      throw new VmmError('EEXIST', `PASID ${pasid} of domain ${this.domain} is already installed`);
    if (!Number.isInteger(pasid) || pasid < 0 || pasid >= this.pasidLimit) {
      throw new VmmError(
        'ERANGE',
        `PASID ${pasid} is outside the endpoint's ${this.description.pasidBits} PASID bits`,
      );
    }
    const asid = this.asids === null ? 0 : this.asids.alloc();
    const target: InvalidationTarget = { domain: this.domain, pasid, asid };
    let ops: IoPgtableOps | undefined;
    try {
      const cfg = pgtableCfg(this.driver, this.pgtableGeometry(), this.invalidations.flushOps(target));
      ops = this.format().alloc(cfg, this);
      const ctx = this.table.prepare(ops.cfg, asid);
      this.table.write(pasid, ctx);
    } catch (error) {
      if (ops !== undefined) {
        // The entry may be in the table already (its sync failed): it must not outlive its tables.
        this.clearEntryAfterFailure(pasid);
        ops.free();
      }
      this.asids?.free(asid);
      throw error;
    }
    this.contexts.set(pasid, { ops, target });
    return ops;
  }

  /** Clears the entry of `pasid` (synced), flushes its TLB entries, frees its tables. */
  removePasid(pasid: number): void {
    const context = this.context(pasid);
    this.table.write(pasid, null);
    this.invalidations.all(context.target);
    this.invalidations.flush();
    context.ops.free();
    this.asids?.free(context.target.asid);
    this.contexts.delete(pasid);
  }

  /** Maps `[iova, iova + size)` of `pasid` to `pa` with `IommuProt` bits; sends what the table asked to invalidate. */
  map(pasid: number, iova: number, pa: number, size: number, prot: number): void {
    const { ops } = this.context(pasid);
    try {
      ops.map(iova, pa, size, prot);
    } finally {
      this.invalidations.flush();
    }
  }

  /**
   * Unmaps `[iova, iova + size)` of `pasid` and sends the TLB invalidations the table asked for,
   * batched into one notification. Returns the bytes unmapped.
   */
  unmap(pasid: number, iova: number, size: number): number {
    const { ops, target } = this.context(pasid);
    return this.unmapWith(ops, target, iova, size);
  }

  /**
   * Invalidates what the device may cache for `pasid` after the caller edited its tables through
   * `pgtable()`: the leaf entries of `[iova, iova + size)`, or everything of the PASID.
   */
  invalidate(pasid: number, iova?: number, size?: number): void {
    const { target, ops } = this.context(pasid);
    if (iova === undefined || size === undefined) this.invalidations.all(target);
    else this.invalidations.range(target, iova, size, smallestPage(ops.cfg.pgsizeBitmap), true);
    this.invalidations.flush();
  }

  /** Attaches another endpoint to the same table (the device lets endpoints share it). */
  attach(endpoint: number): void {
    this.checkOffered(endpoint, this.description.format);
    this.attachTable(endpoint, this.table.attachDescriptor());
  }

  /** Detaches every endpoint, clears every PASID and frees the tables and the domain. */
  destroy(): void {
    this.detachAll();
    for (const pasid of this.pasids) {
      const context = this.contexts.get(pasid)!;
      this.table.write(pasid, null);
      context.ops.free();
      this.contexts.delete(pasid);
    }
    this.table.free();
    this.releaseDomain();
  }

  /**
   * Best-effort removal of a half-installed entry while another error is being reported: that
   * error is the one the caller needs, so a second failure here (the device stopped answering)
   * is recorded on it rather than thrown.
   */
  private clearEntryAfterFailure(pasid: number): void {
    try {
      this.table.write(pasid, null);
    } catch (cleanup) {
      this.cleanupFailures.push(cleanup);
    }
  }

  private pgtableGeometry(): PgtableGeometry {
    if (this.geometry === null) this.geometry = pgtableGeometry(this.description, this.options);
    return this.geometry;
  }

  private format(): IoPgtableFormat {
    if (this.pgtableFormat === null) {
      const registry = this.driver.container!.get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry);
      this.pgtableFormat = registry.get(this.options.pgtableFormat);
    }
    return this.pgtableFormat;
  }

  private context(pasid: number): PasidContext {
    const context = this.contexts.get(pasid);
    if (context === undefined) {
      throw new VmmError(
        'ENOENT',
        `PASID ${pasid} is not installed in domain ${this.domain} (addPasid first)`,
      );
    }
    return context;
  }
}

/**
 * Attaches `endpoint` to a new domain holding a guest PASID table: PROBE, table allocation, the
 * requested PASIDs, then ATTACH_TABLE with the table's descriptor.
 */
export function attachPasidTable(
  driver: VirtioIommuDriver,
  endpoint: number,
  options: AttachPasidTableOptions,
): NestedPasidDomain {
  const wanted = options.tableFormat ?? declaredTableFormat(driver, 'pasid-table', options.pasidTableFormat);
  const description = pickFormat(driver, endpoint, 'pasid-table', wanted);
  const domain = driver.allocateDomain('nested');
  let nested: NestedPasidDomain | undefined;
  try {
    nested = new NestedPasidDomain(driver, domain, description, options);
    nested.table.alloc();
    const descriptor = nested.table.attachDescriptor();
    if (descriptor.format !== description.format) {
      throw new VmmError(
        'EINVAL',
        `PASID-table format '${options.pasidTableFormat}' builds virtio-iommu table format ${descriptor.format}, but format ${description.format} was chosen for endpoint ${endpoint}`,
      );
    }
    // The entries are written before the table is handed over: the device cannot have cached
    // anything of a table it has never seen, so these writes need no INVALIDATE (Linux likewise
    // fills a CD table before it installs the STE). Later writes are synced one by one.
    for (const pasid of options.pasids ?? []) nested.addPasid(pasid);
    nested.attachTable(endpoint, descriptor);
    return nested;
  } catch (error) {
    if (nested !== undefined) nested.destroy();
    else driver.destroyDomain(domain);
    throw error;
  }
}
