/**
 * Nested attach of a single guest page table without PASIDs (docs/PROTOCOL.md ATTACH_TABLE
 * formats 1 and 3): one io-pgtable, described to the device by its format's `attachDescriptor`.
 */
import { type IoPgtableOps, type IoPgtableRegistry, TOKENS, VmmError } from '@vmmkit/core';
import type { VirtioIommuDriver } from './driver.js';
import {
  declaredTableFormat,
  NestedTableBase,
  type PgtableGeometryOptions,
  pgtableCfg,
  pgtableGeometry,
  pickFormat,
  smallestPage,
} from './nested-common.js';
import type { InvalidationTarget } from './nested-invalidation.js';

export interface AttachPageTableOptions extends PgtableGeometryOptions {
  /** io-pgtable format registered in the container (`arm-lpae-s1`). */
  pgtableFormat: string;
  /**
   * virtio-iommu table format number to use when the endpoint offers several page-table formats
   * (default: the number the io-pgtable format declares, if it does).
   */
  tableFormat?: number;
}

/** A domain whose endpoints translate through one guest page table. */
export class NestedPageTableDomain extends NestedTableBase {
  ops!: IoPgtableOps;
  private target!: InvalidationTarget;
  private descriptor!: { format: number; payload: Uint8Array };

  /** The table, to map and unmap directly (then call `flush()`), or through `map`/`unmap`. */
  get pgtable(): IoPgtableOps {
    return this.ops;
  }

  /** Builds the table and its ATTACH_TABLE descriptor; called once by `attachPageTable`. */
  build(options: AttachPageTableOptions): void {
    const registry = this.driver.container!.get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry);
    const format = registry.get(options.pgtableFormat);
    if (format.attachDescriptor === undefined) {
      throw new VmmError(
        'ENOSYS',
        `io-pgtable format '${format.name}' cannot be described to a paravirtual IOMMU`,
      );
    }
    const bits = this.description.asidBits;
    // ASIDs are per domain here: every INVALIDATE names the domain, so one table needs just one.
    this.target = { domain: this.domain, asid: bits > 0 ? 1 : 0 };
    const geometry = pgtableGeometry(this.description, options);
    const cfg = pgtableCfg(this.driver, geometry, this.invalidations.flushOps(this.target));
    this.ops = registry.alloc(format.name, cfg, this);
    try {
      this.descriptor = format.attachDescriptor(this.ops.cfg, this.target.asid);
      if (this.descriptor.format !== this.description.format) {
        throw new VmmError(
          'EINVAL',
          `io-pgtable format '${format.name}' builds virtio-iommu table format ${this.descriptor.format}, but format ${this.description.format} was chosen`,
        );
      }
    } catch (error) {
      this.ops.free();
      throw error;
    }
  }

  /** Maps `[iova, iova + size)` to `pa` with `IommuProt` bits; sends what the table asked to invalidate. */
  map(iova: number, pa: number, size: number, prot: number): void {
    try {
      this.ops.map(iova, pa, size, prot);
    } finally {
      this.invalidations.flush();
    }
  }

  /** Unmaps and sends the TLB invalidations the table asked for, in one notification. */
  unmap(iova: number, size: number): number {
    return this.unmapWith(this.ops, this.target, iova, size);
  }

  /**
   * Invalidates what the device may cache after the caller edited the table through `pgtable`:
   * the leaf entries of `[iova, iova + size)`, or everything.
   */
  invalidate(iova?: number, size?: number): void {
    if (iova === undefined || size === undefined) this.invalidations.all(this.target);
    else this.invalidations.range(this.target, iova, size, smallestPage(this.ops.cfg.pgsizeBitmap), true);
    this.invalidations.flush();
  }

  /** Attaches another endpoint to the same table. */
  attach(endpoint: number): void {
    this.checkOffered(endpoint, this.description.format);
    this.attachTable(endpoint, this.descriptor);
  }

  /** Detaches every endpoint and frees the table and the domain. */
  destroy(): void {
    this.detachAll();
    this.ops?.free();
    this.releaseDomain();
  }
}

/** Attaches `endpoint` to a new domain holding one guest page table. */
export function attachPageTable(
  driver: VirtioIommuDriver,
  endpoint: number,
  options: AttachPageTableOptions,
): NestedPageTableDomain {
  const wanted = options.tableFormat ?? declaredTableFormat(driver, 'page-table', options.pgtableFormat);
  const description = pickFormat(driver, endpoint, 'page-table', wanted);
  const domain = driver.allocateDomain('nested');
  const nested = new NestedPageTableDomain(driver, domain, description);
  try {
    nested.build(options);
  } catch (error) {
    driver.destroyDomain(domain);
    throw error;
  }
  try {
    nested.attach(endpoint);
  } catch (error) {
    nested.destroy();
    throw error;
  }
  return nested;
}
