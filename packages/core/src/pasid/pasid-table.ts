import { VmmError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { PageAllocator } from '../memory/page-allocator.js';
import type { IoPgtableCfg } from '../pgtable/io-pgtable.js';

/**
 * The IOMMU a PASID table is built for (the seed's `struct device *iommu_dev`): where the table
 * is written, where its pages come from, and what the IOMMU supports.
 */
export interface PasidTableDevice {
  readonly name: string;
  readonly memory: GuestMemory;
  readonly allocator: PageAllocator;
  /** Capabilities the vendor reads (e.g. `ssidBits`, `cd2l` for SMMUv3). */
  readonly features?: Readonly<Record<string, number | boolean>>;
}

/**
 * Per-vendor table state, keyed by vendor name. Vendors extend it by declaration merging, so the
 * union stays open: `declare module '@vmmkit/core' { interface PasidVendorConfigs { arm: … } }`.
 */
// biome-ignore lint/suspicious/noEmptyInterface: extended by vendor packages through declaration merging
export interface PasidVendorConfigs {}

/** Consumer-supplied invalidation of a table entry (a virtio-iommu INVALIDATE, or CMDQ commands). */
export type PasidTableSync = (cookie: unknown, ssid: number, leaf: boolean) => void;

/** The seed's `struct iommu_vendor_psdtable_cfg`. */
export interface PasidTableCfg {
  readonly iommuDev: PasidTableDevice;
  /** Table format name, e.g. `arm-smmu-v3`. */
  readonly format: string;
  /** The consumer's cookie given at registration; handed back to `sync`. */
  readonly cookie: unknown;
  /** Guest-physical base of the table; set by the vendor's `alloc`, 0 before. */
  base: number;
  /** Vendor state, under the vendor's name. */
  vendor: Partial<PasidVendorConfigs>;
  /** The consumer's invalidation callback, used in preference to the vendor's own `sync`. */
  sync?: PasidTableSync;
}

/**
 * The seed's `struct iommu_vendor_psdtable_ops`. Every op is optional: the `PasidTable` wrappers
 * answer `ENOSYS` for a missing one (and a missing `free` does nothing).
 * `Ctx` is the vendor's context-descriptor object that `prepare` builds and `write` installs.
 */
export interface PasidTableOps<Ctx = unknown> {
  alloc?(cfg: PasidTableCfg): void;
  free?(cfg: PasidTableCfg): void;
  prepare?(cfg: PasidTableCfg, pgtableCfg: IoPgtableCfg, asid: number): Ctx;
  /** Installs (`ctx`), updates, or clears (`null`) the entry of substream `ssid`. */
  write?(cfg: PasidTableCfg, ssid: number, ctx: Ctx | null): void;
  sync?(cookie: unknown, ssid: number, leaf: boolean): void;
}

/** What a plugin registers for one PASID-table format. */
export interface PasidTableVendor<Ctx = unknown> {
  /** Vendor name, the key of its `PasidVendorConfigs` member (e.g. `arm`). */
  readonly vendor: string;
  /** Format name (e.g. `arm-smmu-v3`). */
  readonly format: string;
  readonly ops: PasidTableOps<Ctx>;
  /**
   * How the table is described to a paravirtual IOMMU: the virtio-iommu table format number and
   * bytes 16..83 of ATTACH_TABLE (68 bytes: the le16 format, then the format payload).
   */
  readonly attachDescriptor?: (cfg: PasidTableCfg) => { format: number; payload: Uint8Array };
  /**
   * The virtio-iommu table format number `attachDescriptor` builds (2 Arm SMMUv3, or a plugin's
   * own), so a driver can pick the matching PROBE offer before it allocates a table.
   */
  readonly virtioIommuFormat?: number;
}

/** The seed's `struct iommu_pasid_table`: a cookie, a config and the vendor ops. */
export class PasidTable<Ctx = unknown> {
  constructor(
    readonly cfg: PasidTableCfg,
    readonly cookie: unknown,
    private readonly vendor: PasidTableVendor<Ctx>,
  ) {}

  get vendorName(): string {
    return this.vendor.vendor;
  }

  alloc(): void {
    this.op('alloc').call(this.vendor.ops, this.cfg);
  }

  /** Frees the table; a vendor without `free` has nothing to free. */
  free(): void {
    this.vendor.ops.free?.(this.cfg);
  }

  prepare(pgtableCfg: IoPgtableCfg, asid: number): Ctx {
    return this.op('prepare').call(this.vendor.ops, this.cfg, pgtableCfg, asid);
  }

  write(ssid: number, ctx: Ctx | null): void {
    this.op('write').call(this.vendor.ops, this.cfg, ssid, ctx);
  }

  sync(ssid: number, leaf: boolean): void {
    if (this.cfg.sync) {
      this.cfg.sync(this.cookie, ssid, leaf);
      return;
    }
    this.op('sync').call(this.vendor.ops, this.cookie, ssid, leaf);
  }

  /** The ATTACH_TABLE description of this table, for a paravirtual IOMMU driver. */
  attachDescriptor(): { format: number; payload: Uint8Array } {
    const describe = this.vendor.attachDescriptor;
    if (!describe) {
      throw new VmmError(
        'ENOSYS',
        `PASID table format '${this.cfg.format}' cannot be described to a paravirtual IOMMU`,
      );
    }
    return describe(this.cfg);
  }

  private op<K extends keyof PasidTableOps<Ctx>>(name: K): NonNullable<PasidTableOps<Ctx>[K]> {
    const fn = this.vendor.ops[name];
    if (typeof fn !== 'function') {
      throw new VmmError(
        'ENOSYS',
        `PASID table vendor '${this.vendor.vendor}' (format '${this.cfg.format}') has no '${name}' op`,
        {
          op: name,
          format: this.cfg.format,
        },
      );
    }
    return fn as NonNullable<PasidTableOps<Ctx>[K]>;
  }
}
