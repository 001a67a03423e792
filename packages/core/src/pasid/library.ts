import { VmmError } from '../errors.js';
import {
  PasidTable,
  type PasidTableDevice,
  type PasidTableSync,
  type PasidTableVendor,
} from './pasid-table.js';

export interface RegisterPasidTableOptions {
  /** The consumer's invalidation op (a paravirtual IOMMU supplies INVALIDATE here). */
  sync?: PasidTableSync;
}

/**
 * The PASID table library: the vendors plugins registered, and the registration call that the
 * seed left as a placeholder returning NULL. Resolved from the container as `TOKENS.PasidTableLibrary`.
 */
export class PasidTableLibrary {
  private readonly vendors = new Map<string, PasidTableVendor>();

  constructor(vendors: readonly PasidTableVendor[] = []) {
    for (const vendor of vendors) this.add(vendor);
  }

  add(vendor: PasidTableVendor): void {
    if (this.vendors.has(vendor.format)) {
      throw new VmmError('EEXIST', `PASID table format '${vendor.format}' is registered twice`);
    }
    this.vendors.set(vendor.format, vendor);
  }

  /** Registered format names. */
  formats(): string[] {
    return [...this.vendors.keys()].sort();
  }

  /**
   * Finds the vendor of a format. A vendor name (e.g. `arm`) is accepted too when that vendor
   * registered exactly one format.
   */
  vendorFor(format: string): PasidTableVendor {
    const direct = this.vendors.get(format);
    if (direct) return direct;
    const byVendor = [...this.vendors.values()].filter((v) => v.vendor === format);
    if (byVendor.length === 1) return byVendor[0]!;
    const known = this.formats().join(', ') || 'none';
    throw new VmmError(
      'ENOENT',
      byVendor.length > 1
        ? `vendor '${format}' registers several PASID table formats; name one of: ${byVendor.map((v) => v.format).join(', ')}`
        : `unknown PASID table format '${format}' (registered: ${known}); load the vendor's plugin first`,
      { format },
    );
  }

  /** The seed's `iommu_register_pasid_table(fmt, dev, cookie)`, resolving the vendor for real. */
  registerPasidTable<Ctx = unknown>(
    format: string,
    dev: PasidTableDevice,
    cookie: unknown,
    options: RegisterPasidTableOptions = {},
  ): PasidTable<Ctx> {
    const vendor = this.vendorFor(format) as PasidTableVendor<Ctx>;
    return new PasidTable<Ctx>(
      { iommuDev: dev, format: vendor.format, cookie, base: 0, vendor: {}, sync: options.sync },
      cookie,
      vendor,
    );
  }
}
