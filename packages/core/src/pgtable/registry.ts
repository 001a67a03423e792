import { VmmError } from '../errors.js';
import type { IoPgtableCfg, IoPgtableFormat, IoPgtableOps } from './io-pgtable.js';

/** The io-pgtable formats plugins registered, by name (Linux `io_pgtable_init_table`). */
export class IoPgtableRegistry {
  private readonly formats = new Map<string, IoPgtableFormat>();

  constructor(formats: readonly IoPgtableFormat[] = []) {
    for (const format of formats) this.register(format);
  }

  register(format: IoPgtableFormat): void {
    if (this.formats.has(format.name)) {
      throw new VmmError('EEXIST', `io-pgtable format '${format.name}' is registered twice`);
    }
    this.formats.set(format.name, format);
  }

  names(): string[] {
    return [...this.formats.keys()].sort();
  }

  get(name: string): IoPgtableFormat {
    const format = this.formats.get(name);
    if (!format) {
      const known = this.names().join(', ') || 'none';
      throw new VmmError('ENOENT', `unknown io-pgtable format '${name}' (registered: ${known})`, { name });
    }
    return format;
  }

  /** Linux `alloc_io_pgtable_ops`. */
  alloc(name: string, cfg: IoPgtableCfg, cookie?: unknown): IoPgtableOps {
    return this.get(name).alloc(cfg, cookie);
  }
}
