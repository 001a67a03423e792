/** What the two kinds of nested domain share: format choice, page-table geometry, attach and unmap. */
import {
  createIotlbGather,
  hex,
  type IoPgtableCfg,
  type IoPgtableFlushOps,
  type IoPgtableOps,
  type IoPgtableRegistry,
  type NestedFormatDescription,
  type PasidTableLibrary,
  TOKENS,
  VmmError,
} from '@vmmkit/core';
import type { VirtioIommuDriver } from './driver.js';
import { InvalidationQueue, type InvalidationTarget } from './nested-invalidation.js';
import { tableFormatName } from './probe-parser.js';

/** Overrides of the page-table geometry PROBE gave (each must stay within what was offered). */
export interface PgtableGeometryOptions {
  /** Page sizes to use, a subset of the endpoint's page size mask. */
  pgsizeBitmap?: number;
  /** Input bits, at most the endpoint's. */
  ias?: number;
}

const SAFE_MASK = (1n << 53n) - 1n;

/**
 * The virtio-iommu table format number a registered io-pgtable format (`kind` 'page-table') or
 * PASID-table format declares it builds (`virtioIommuFormat`); undefined when it declares none
 * or is not registered (building the table reports that).
 */
export function declaredTableFormat(
  driver: VirtioIommuDriver,
  kind: NestedFormatDescription['kind'],
  name: string,
): number | undefined {
  const container = driver.container;
  if (container === undefined) return undefined;
  try {
    if (kind === 'page-table') {
      return container.get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry).get(name).virtioIommuFormat;
    }
    return container.get<PasidTableLibrary>(TOKENS.PasidTableLibrary).vendorFor(name).virtioIommuFormat;
  } catch {
    return undefined;
  }
}

/**
 * The table format the endpoint offered of `kind`: `wanted` when given, else the only one. The
 * driver needs the feature and the endpoint's offer (virtio-iommu-wire §3.9).
 */
export function pickFormat(
  driver: VirtioIommuDriver,
  endpoint: number,
  kind: NestedFormatDescription['kind'],
  wanted: number | undefined,
): NestedFormatDescription {
  if (!driver.features.attachTable) {
    throw new VmmError('ENOSYS', 'nested tables need VIRTIO_IOMMU_F_ATTACH_TABLE, which was not negotiated');
  }
  if (driver.container === undefined) {
    throw new VmmError(
      'EINVAL',
      'nested tables need the driver option `container` (with the vendor plugins loaded)',
    );
  }
  const offered = driver.probeEndpoint(endpoint).formats.filter((f) => f.kind === kind);
  const names = offered.map((f) => `${f.format} (${tableFormatName(f.format)})`).join(', ') || 'none';
  if (wanted !== undefined) {
    const match = offered.find((f) => f.format === wanted);
    if (match === undefined) {
      throw new VmmError(
        'ENOSYS',
        `endpoint ${endpoint} does not offer ${kind} format ${wanted}; it offers: ${names}`,
      );
    }
    return match;
  }
  if (offered.length !== 1) {
    throw new VmmError(
      offered.length === 0 ? 'ENOSYS' : 'EINVAL',
      offered.length === 0
        ? `endpoint ${endpoint} offers no ${kind} format (PROBE reported none with OUTPUT_SIZE${kind === 'pasid-table' ? ' and PASID_SIZE' : ''})`
        : `endpoint ${endpoint} offers several ${kind} formats (${names}); choose one with tableFormat, or have the format declare its virtioIommuFormat`,
    );
  }
  return offered[0]!;
}

/** The table geometry an endpoint's tables use: PROBE's offer narrowed by the caller's options. */
export interface PgtableGeometry {
  ias: number;
  oas: number;
  pgsizeBitmap: number;
}

/** Checks the caller's geometry options against what PROBE offered (`EINVAL` outside it). */
export function pgtableGeometry(
  description: NestedFormatDescription,
  options: PgtableGeometryOptions,
): PgtableGeometry {
  const offeredSizes = Number(description.pageSizeMask & SAFE_MASK);
  let pgsizeBitmap = offeredSizes;
  if (options.pgsizeBitmap !== undefined) {
    const wanted = BigInt(options.pgsizeBitmap);
    if (options.pgsizeBitmap <= 0 || (wanted & ~description.pageSizeMask) !== 0n) {
      throw new VmmError(
        'EINVAL',
        `pgsizeBitmap ${hex(options.pgsizeBitmap)} must be a non-empty subset of the offered ${hex(description.pageSizeMask)}`,
      );
    }
    pgsizeBitmap = options.pgsizeBitmap;
  }
  const ias = options.ias ?? description.inputBits;
  if (!Number.isInteger(ias) || ias <= 0 || ias > description.inputBits) {
    throw new VmmError(
      'EINVAL',
      `ias ${ias} must be 1..${description.inputBits} (the endpoint's input bits)`,
    );
  }
  return { ias, oas: description.outputBits, pgsizeBitmap };
}

/** The io-pgtable configuration of a table for an endpoint: its geometry, tables in guest RAM. */
export function pgtableCfg(
  driver: VirtioIommuDriver,
  geometry: PgtableGeometry,
  tlb: IoPgtableFlushOps,
): IoPgtableCfg {
  return {
    ias: geometry.ias,
    oas: geometry.oas,
    pgsizeBitmap: geometry.pgsizeBitmap,
    coherentWalk: true,
    tlb,
    memory: driver.memory,
    allocator: driver.allocator,
    vendor: {},
  };
}

/** The smallest page size of a bitmap (which may exceed 32 bits, so no bitwise operators). */
export function smallestPage(bitmap: number): number {
  let size = 1;
  while (size <= bitmap && Math.floor(bitmap / size) % 2 === 0) size *= 2;
  return size;
}

/** A nested domain on the driver: its ID, its endpoints and its pending invalidations. */
export abstract class NestedTableBase {
  protected readonly invalidations: InvalidationQueue;
  private readonly attached = new Set<number>();

  constructor(
    protected readonly driver: VirtioIommuDriver,
    readonly domain: number,
    readonly description: NestedFormatDescription,
  ) {
    this.invalidations = new InvalidationQueue(driver, () => this.attached.size > 0);
  }

  /** Endpoints attached to this table. */
  get endpoints(): number[] {
    return [...this.attached].sort((a, b) => a - b);
  }

  /** Sends invalidations queued by direct use of a `pgtable()` (one notification per queue-full). */
  flush(): void {
    this.invalidations.flush();
  }

  /** Detaches one endpoint; the domain stays while others use it. */
  detach(endpoint: number): void {
    if (!this.attached.has(endpoint))
      throw new VmmError('ENOENT', `endpoint ${endpoint} is not attached to domain ${this.domain}`);
    this.driver.batch(1).detach(this.domain, endpoint).submit().throwIfFailed();
    this.attached.delete(endpoint);
    this.driver.noteDetached(endpoint);
  }

  /** ATTACH_TABLE of `endpoint` with a table descriptor (bytes 16..83). */
  attachTable(endpoint: number, descriptor: { format: number; payload: Uint8Array }): void {
    this.driver.batch(1).attachTable(this.domain, endpoint, descriptor).submit().throwIfFailed();
    this.attached.add(endpoint);
    this.driver.noteAttached(endpoint, this.domain);
  }

  protected checkOffered(endpoint: number, format: number): void {
    pickFormat(this.driver, endpoint, this.description.kind, format);
  }

  protected unmapWith(ops: IoPgtableOps, target: InvalidationTarget, iova: number, size: number): number {
    const gather = createIotlbGather();
    try {
      return ops.unmap(iova, size, gather);
    } finally {
      this.invalidations.gathered(target, gather);
      this.invalidations.flush();
    }
  }

  protected detachAll(): void {
    for (const endpoint of this.endpoints) this.detach(endpoint);
  }

  protected releaseDomain(): void {
    this.driver.destroyDomain(this.domain);
  }
}
