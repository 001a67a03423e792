import {
  type DmaAccess,
  NestedBackendRegistry,
  type NestedInvalidation,
  type NestedTable,
  type NestedTableBackend,
  TOKENS,
  type TranslationStep,
  VmmError,
} from '@vmmkit/core';
import {
  createPageTranslation,
  createVirtioIommuDevice,
  type PageTranslation,
  type VirtioIommuDevice,
  type VirtioIommuDeviceOptions,
} from '@vmmkit/virtio-iommu';
import type { DeviceSpec } from '../devices.js';
import { DMA_PAGE_SIZE, type DmaPage, type DmaTranslator } from '../dma/translator.js';
import { virtioMmioDevice } from './virtio-mmio-device.js';

/** What the host sends a nested table when its stage-2 view shrank: drop every cached entry. */
const FLUSH_EVERYTHING: NestedInvalidation = {
  granularity: 'domain',
  caches: { iotlb: true, devIotlb: true, pasid: true },
  leaf: false,
  virtStart: 0n,
  nrPages: 0n,
  granule: 12,
};

/**
 * The virtio-iommu's page translate as DMA devices see it; faults go to its event queue. A page
 * is handed out only when all its 4 KiB translate, contiguously, for the access.
 */
export function virtioIommuTranslator(device: VirtioIommuDevice): DmaTranslator {
  const out = createPageTranslation();
  return {
    name: 'virtio-iommu',
    translatePage(endpoint, pasid, iovaPage, access, page) {
      if (!device.translateIovaPage(endpoint, pasid, iovaPage, access, out)) {
        page.fault = out.reason;
        return false;
      }
      // pa is -1 when the output address is 2^53 or above: no guest RAM is there.
      page.pa = out.pa < 0 ? Number.MAX_SAFE_INTEGER : out.pa;
      if (out.length >= DMA_PAGE_SIZE) return true;
      return wholePage(device, endpoint, pasid, iovaPage, access, page, out);
    },
    translatePages(endpoint, pasid, firstPage, count, access, pas) {
      return device.translateIovaPages(endpoint, pasid, firstPage, count, access, pas);
    },
  };
}

/**
 * A page whose first translation ends inside it (a MAP granule below 4 KiB, set with
 * `device.configure`): each further piece is translated as the device reaches it, and reported
 * if it faults. The page is refused, unreported, when the pieces are not contiguous: the engine
 * moves a page as one block.
 */
function wholePage(
  device: VirtioIommuDevice,
  endpoint: number,
  pasid: number,
  iovaPage: number,
  access: DmaAccess,
  page: DmaPage,
  out: PageTranslation,
): boolean {
  const hi = Math.floor(iovaPage / 2 ** 20);
  const lo = (iovaPage - hi * 2 ** 20) * DMA_PAGE_SIZE;
  const first = page.pa;
  // Each piece is at least one byte long, so this ends within 4096 translations.
  for (let at = out.length; at < DMA_PAGE_SIZE; at += out.length) {
    if (!device.translatePageHalves(endpoint, pasid, lo + at, hi, access, out)) {
      page.fault = out.reason;
      return false;
    }
    if (out.pa !== first + at || out.length < 1) {
      page.fault = 0;
      return false;
    }
  }
  return true;
}

export type VirtioIommuSpecOptions = Omit<VirtioIommuDeviceOptions, 'nestedBackends'> & {
  /** Place the window here instead of the next free slot. */
  gpa?: number;
};

/**
 * The virtio-iommu behind a virtio-mmio transport, with the table formats every plugin
 * registered (`TOKENS.NestedBackendRegistry`); it becomes the machine's IOMMU, so DMA engines
 * translate through it.
 */
export interface VirtioIommuSpec extends DeviceSpec {
  /** The placed device (throws before the machine placed it). */
  device(): VirtioIommuDevice;
  /**
   * Every step of translating `iova` for `endpoint`/`pasid` through the guest table the endpoint
   * is attached to, or `null` when it holds no nested table. Reads guest memory; no cache is touched.
   */
  explain(endpoint: number, pasid: number, iova: number, access: DmaAccess): TranslationStep[] | null;
}

/**
 * Records which nested table each endpoint was given, so the VMM can explain translations
 * (the device itself only exposes translate).
 */
function recordingBackends(backends: readonly NestedTableBackend[], tables: Map<number, NestedTable>) {
  return backends.map(
    (backend): NestedTableBackend => ({
      vendor: backend.vendor,
      describe: (endpoint) => backend.describe(endpoint),
      attach(request) {
        const result = backend.attach(request);
        if (!result.ok) return result;
        const table = result.table;
        tables.set(request.endpoint, table);
        const wrapped: NestedTable = {
          translate: (pasid, iova, access, out) => table.translate(pasid, iova, access, out),
          explain: (pasid, iova, access) => table.explain(pasid, iova, access),
          invalidate: (invalidation) => table.invalidate(invalidation),
          sameTable: (payload) => table.sameTable(payload),
          release() {
            for (const [endpoint, t] of tables) if (t === table) tables.delete(endpoint);
            table.release();
          },
        };
        return { ok: true, table: wrapped };
      },
    }),
  );
}

export function virtioIommu(options: VirtioIommuSpecOptions): VirtioIommuSpec {
  // The machine's DMA engines move whole 4 KiB pages (DMA_PAGE_SIZE). With a finer MAP granule a
  // page can be mapped in pieces, which the translator must refuse (see wholePage): say so now.
  const mask = options.pageSizeMask;
  if (typeof mask === 'bigint' && mask > 0n && (mask & -mask) < BigInt(DMA_PAGE_SIZE)) {
    throw new VmmError(
      'EINVAL',
      `virtio-iommu pageSizeMask 0x${mask.toString(16)} allows mappings smaller than the 4 KiB pages the VMM's DMA engines translate; clear its bits below bit 12`,
    );
  }
  let device: VirtioIommuDevice | null = null;
  const tables = new Map<number, NestedTable>();
  const name = options.name ?? 'virtio-iommu';
  const spec = virtioMmioDevice(
    {
      name,
      ...(options.gpa === undefined ? {} : { gpa: options.gpa }),
      extend: () => ({
        translator: virtioIommuTranslator(device!),
        memoryChanged(change) {
          // The device re-reads guest tables on a miss, so a new bank needs nothing. A bank that
          // left takes its stage-2 mappings with it: every cached CD and IOTLB entry goes, so a
          // table that lived there now faults instead of translating from the cache.
          if (change.op !== 'remove') return;
          for (const table of new Set(tables.values())) table.invalidate(FLUSH_EVERYTHING);
        },
      }),
    },
    (ctx) => {
      const registered = ctx.container.getAll<NestedTableBackend>(TOKENS.NestedTableBackend, {
        optional: true,
      });
      const backends = new NestedBackendRegistry(recordingBackends(registered, tables));
      device = createVirtioIommuDevice({ ...options, name, nestedBackends: backends });
      return device;
    },
  );
  return {
    ...spec,
    device() {
      if (device === null) throw new Error(`virtio-iommu '${name}' has not been placed on a machine yet`);
      return device;
    },
    explain(endpoint, pasid, iova, access) {
      return tables.get(endpoint)?.explain(pasid, iova, access) ?? null;
    },
  };
}
