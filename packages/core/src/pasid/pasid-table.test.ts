import { describe, expect, it, vi } from 'vitest';
import { createContainer, definePlugin } from '../di/plugin.js';
import { TOKENS } from '../di/tokens.js';
import { isVmmError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { BitmapPageAllocator } from '../memory/page-allocator.js';
import type { IoPgtableCfg } from '../pgtable/io-pgtable.js';
import { PasidTableLibrary } from './library.js';
import type { PasidTableCfg, PasidTableDevice, PasidTableVendor } from './pasid-table.js';

declare module './pasid-table.js' {
  interface PasidVendorConfigs {
    toy: { entries: Map<number, string> };
  }
}

function device(): PasidTableDevice {
  const memory = new GuestMemory();
  memory.addBank({ gpa: 0, size: 0x10_0000 });
  return {
    name: 'toy-iommu',
    memory,
    allocator: new BitmapPageAllocator(memory, { base: 0x1000, size: 0xf_f000 }),
  };
}

/** A vendor that keeps its table in guest memory: one 8-byte entry per substream. */
const toyVendor: PasidTableVendor<string> = {
  vendor: 'toy',
  format: 'toy-table',
  ops: {
    alloc(cfg: PasidTableCfg) {
      cfg.base = cfg.iommuDev.allocator.alloc(0x1000);
      cfg.vendor.toy = { entries: new Map() };
    },
    free(cfg) {
      cfg.iommuDev.allocator.free(cfg.base);
      cfg.base = 0;
    },
    prepare: (_cfg, pgtableCfg: IoPgtableCfg, asid) => `asid=${asid} ias=${pgtableCfg.ias}`,
    write(cfg, ssid, ctx) {
      cfg.iommuDev.memory.writeU32(cfg.base + ssid * 8, ctx === null ? 0 : 1);
      if (ctx === null) cfg.vendor.toy!.entries.delete(ssid);
      else cfg.vendor.toy!.entries.set(ssid, ctx);
    },
  },
};

const incompleteVendor: PasidTableVendor = { vendor: 'bare', format: 'bare-table', ops: {} };

describe('PasidTableLibrary', () => {
  it('resolves vendors registered by plugins through the container (the seed returned NULL)', () => {
    const plugin = definePlugin('toy', (r) => r.pasidTableVendor(toyVendor));
    const library = createContainer([plugin]).get<PasidTableLibrary>(TOKENS.PasidTableLibrary);
    const table = library.registerPasidTable<string>('toy-table', device(), { owner: 'test' });
    expect(table.cfg.format).toBe('toy-table');
    expect(table.vendorName).toBe('toy');
    table.alloc();
    expect(table.cfg.base).not.toBe(0);
    const ctx = table.prepare({ ias: 48 } as IoPgtableCfg, 7);
    table.write(3, ctx);
    expect(table.cfg.vendor.toy!.entries.get(3)).toBe('asid=7 ias=48');
    expect(table.cfg.iommuDev.memory.readU32(table.cfg.base + 24)).toBe(1);
    table.write(3, null);
    expect(table.cfg.vendor.toy!.entries.has(3)).toBe(false);
  });

  it('accepts the vendor name when it names a single format', () => {
    const library = new PasidTableLibrary([toyVendor]);
    expect(library.registerPasidTable('toy', device(), null).cfg.format).toBe('toy-table');
  });

  it('fails for an unknown format with the list of registered ones', () => {
    const library = new PasidTableLibrary([toyVendor, incompleteVendor]);
    try {
      library.registerPasidTable('intel-vtd', device(), null);
      expect.unreachable();
    } catch (error) {
      expect(isVmmError(error, 'ENOENT')).toBe(true);
      expect((error as Error).message).toContain('bare-table, toy-table');
    }
  });

  it('refuses registering one format twice', () => {
    expect(() => new PasidTableLibrary([toyVendor, toyVendor])).toThrow(/EEXIST/);
  });

  it('answers ENOSYS for missing ops, except free which does nothing', () => {
    const table = new PasidTableLibrary([incompleteVendor]).registerPasidTable('bare-table', device(), null);
    for (const call of [
      () => table.alloc(),
      () => table.prepare({} as IoPgtableCfg, 1),
      () => table.write(0, null),
      () => table.sync(0, true),
    ]) {
      expect(call).toThrow(expect.objectContaining({ code: 'ENOSYS' }));
    }
    expect(() => table.attachDescriptor()).toThrow(expect.objectContaining({ code: 'ENOSYS' }));
    expect(() => table.free()).not.toThrow();
  });

  it('calls the consumer sync with the registration cookie in preference to the vendor sync', () => {
    const vendorSync = vi.fn();
    const consumerSync = vi.fn();
    const vendor: PasidTableVendor = { ...toyVendor, ops: { ...toyVendor.ops, sync: vendorSync } };
    const library = new PasidTableLibrary([vendor]);
    const cookie = { domain: 4 };
    library.registerPasidTable('toy-table', device(), cookie).sync(5, false);
    expect(vendorSync).toHaveBeenCalledWith(cookie, 5, false);
    library.registerPasidTable('toy-table', device(), cookie, { sync: consumerSync }).sync(6, true);
    expect(consumerSync).toHaveBeenCalledWith(cookie, 6, true);
    expect(vendorSync).toHaveBeenCalledTimes(1);
  });
});
