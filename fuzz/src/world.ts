/**
 * The machine a hostile guest gets: a virtio-iommu (arm nested backends registered) behind a
 * real virtio-mmio transport and split virtqueues, DMA engines of `@vmmkit/vmm` on each
 * endpoint translating through it, and a canary-filled DMA region in guest RAM.
 */
import {
  createContainer,
  type GuestMemory,
  type IoPgtableOps,
  type IoPgtableRegistry,
  type PageAllocator,
  type PasidTable,
  type PasidTableLibrary,
  TOKENS,
} from '@vmmkit/core';
import { smmuv3Plugin } from '@vmmkit/smmuv3';
import { createPageTranslation, type VirtioIommuDevice } from '@vmmkit/virtio-iommu';
import { createVirtioIommuHarness, type VirtioIommuHarness } from '@vmmkit/virtio-iommu/testing';
import { DmaEngine, type DmaPage, type DmaTranslator } from '@vmmkit/vmm';
import type { ModelRegion } from './model/upstream-model.js';

export const RAM_BASE = 0x4000_0000;
export const RAM_SIZE = 8 << 20;
/** DMA targets live here (the harness's scratch RAM, below its page allocator). */
export const DMA_REGION = RAM_BASE;
export const DMA_PAGES = 64;
export const PAGE = 0x1000;
/** Endpoints of the device; 9 is unknown to it. Endpoint 3 has reserved regions. */
export const ENDPOINTS = [1, 2, 3] as const;
export const UNKNOWN_ENDPOINT = 9;
export const RESERVED_REGIONS: readonly ModelRegion[] = [
  { start: 0x8000_0000n, end: 0x800f_ffffn, subtype: 'reserved' },
  { start: 0x0800_0000n, end: 0x0800_ffffn, subtype: 'msi' },
];

export interface WorldOptions {
  bypass: boolean;
  /** Restrict the input range to 48 bits starting at one page (else the full 64-bit space). */
  narrowInput: boolean;
  maxDomains?: number;
  maxMappingsPerDomain?: number;
  eventBuffers?: number;
}

/** The canary byte expected at a guest-physical address of the DMA region. */
export const canary = (gpa: number): number => ((gpa >>> 12) * 7 + (gpa & 0xfff) * 13 + 0x3c) & 0xff;

/** A page allocator that never hands a page out twice: freed guest tables stay intact, as stale walks may read them. */
function quarantine(inner: PageAllocator, owned: Set<number>): PageAllocator {
  return {
    alloc(size, align) {
      const gpa = inner.alloc(size, align);
      for (let p = gpa; p < gpa + size; p += PAGE) owned.add(p);
      return gpa;
    },
    free() {},
  };
}

/** A guest PASID table built with the guest libraries (arm-smmu-v3 CD table, arm-lpae-s1 tables). */
export interface GuestTable {
  readonly domain: number;
  readonly table: PasidTable;
  readonly payload: Uint8Array;
  readonly key: string;
  readonly s1dss: 0 | 1 | 2;
  readonly ops: Map<number, { ops: IoPgtableOps; asid: number }>;
  /** Guest pages holding this table's CDs and page tables (for corruption). */
  readonly pages: Set<number>;
  readonly allocator: PageAllocator;
}

export interface World {
  harness: VirtioIommuHarness;
  device: VirtioIommuDevice;
  memory: GuestMemory;
  engines: Map<number, DmaEngine>;
  options: WorldOptions;
  newGuestTable(domain: number, s1dss: 0 | 1 | 2): GuestTable;
  /** io-pgtable of `pasid` (arm-lpae-s1, 4 KiB pages, 48-bit) and its CD written (not synced). */
  addPasid(guest: GuestTable, pasid: number): number;
  /** Clears the CD of `pasid` (not synced); its tables stay in (quarantined) guest memory. */
  removePasid(guest: GuestTable, pasid: number): void;
  fillCanaries(): void;
  region(): Uint8Array;
}

export const SSID_BITS = 4;

/** The virtio-iommu's page translate as a DMA engine sees it (faults go to its event queue). */
export function iommuTranslator(device: VirtioIommuDevice): DmaTranslator {
  const scratch = createPageTranslation();
  return {
    name: 'virtio-iommu',
    translatePage(endpoint, pasid, iovaPage, access, target: DmaPage) {
      const lo = (iovaPage % 2 ** 20) * PAGE;
      const hi = Math.floor(iovaPage / 2 ** 20);
      if (!device.translatePageHalves(endpoint, pasid, lo, hi, access, scratch)) {
        target.fault = scratch.reason;
        return false;
      }
      // pa is -1 when the output is 2^53 or above: no guest RAM there.
      target.pa = scratch.pa < 0 ? Number.MAX_SAFE_INTEGER : scratch.pa;
      return true;
    },
  };
}

export function createWorld(options: WorldOptions): World {
  const endpointOptions = ENDPOINTS.map((id) =>
    id === 3 ? { id, reservedRegions: RESERVED_REGIONS.map((r) => ({ ...r })) } : { id },
  );
  const harness = createVirtioIommuHarness({
    endpoints: endpointOptions,
    plugins: [smmuv3Plugin],
    bypass: options.bypass,
    memorySize: RAM_SIZE,
    pageSizeMask: 0xffff_ffff_ffff_f000n,
    inputRange: options.narrowInput
      ? { start: 0x1000n, end: (1n << 48n) - 1n }
      : { start: 0n, end: (1n << 64n) - 1n },
    domainRange: { start: 1, end: 32 },
    maxDomains: options.maxDomains ?? 6,
    maxMappingsPerDomain: options.maxMappingsPerDomain ?? 24,
    eventBuffers: options.eventBuffers,
  });
  const { device, memory } = harness;
  const container = createContainer([smmuv3Plugin]);
  const library = container.get<PasidTableLibrary>(TOKENS.PasidTableLibrary);
  const pgtables = container.get<IoPgtableRegistry>(TOKENS.IoPgtableRegistry);
  const translator = iommuTranslator(device);
  const engines = new Map<number, DmaEngine>();
  for (const id of [...ENDPOINTS, UNKNOWN_ENDPOINT]) {
    engines.set(id, new DmaEngine(`dma${id}`, memory, { raise() {} }, () => translator, id, 20));
  }
  let asid = 1;
  const world: World = {
    harness,
    device,
    memory,
    engines,
    options,
    newGuestTable(domain, s1dss) {
      const pages = new Set<number>();
      const allocator = quarantine(harness.guest.allocator, pages);
      const dev = {
        name: `guest table ${domain}`,
        memory,
        allocator,
        features: { ssidBits: SSID_BITS, asidBits: 16 },
      };
      const table = library.registerPasidTable('arm-smmu-v3', dev, null, { sync: () => {} });
      Object.assign(table.cfg.vendor, { arm: { s1dss } });
      table.alloc();
      const descriptor = table.attachDescriptor();
      const payload = descriptor.payload.subarray(2);
      const key = Buffer.from(descriptor.payload).toString('hex');
      const ops = new Map<number, { ops: IoPgtableOps; asid: number }>();
      return { domain, table, payload, key, s1dss, ops, pages, allocator };
    },
    addPasid(guest, pasid) {
      const id = asid++;
      const ops = pgtables.alloc('arm-lpae-s1', {
        ias: 48,
        oas: 48,
        pgsizeBitmap: PAGE,
        coherentWalk: true,
        tlb: { flushAll() {}, flushWalk() {}, addPage() {} },
        memory,
        allocator: guest.allocator,
        vendor: {},
      });
      guest.table.write(pasid, guest.table.prepare(ops.cfg, id));
      guest.ops.set(pasid, { ops, asid: id });
      return id;
    },
    removePasid(guest, pasid) {
      guest.table.write(pasid, null);
      guest.ops.delete(pasid);
    },
    fillCanaries() {
      const view = memory.view(DMA_REGION, DMA_PAGES * PAGE);
      for (let i = 0; i < view.length; i++) view[i] = canary(DMA_REGION + i);
    },
    region: () => memory.read(DMA_REGION, DMA_PAGES * PAGE),
  };
  world.fillCanaries();
  return world;
}
