import { DmaAccess, NO_PASID, VmmError } from '@vmmkit/core';
import { encodeAttach, encodeMap, FaultReason, MapFlag, Status } from '@vmmkit/virtio-iommu';
import { createVirtioIommuHarness, requestStatus } from '@vmmkit/virtio-iommu/testing';
import { describe, expect, it } from 'vitest';
import { createDmaPage } from '../dma/translator.js';
import { virtioIommu, virtioIommuTranslator } from './virtio-iommu-device.js';

const U64_MAX = (1n << 64n) - 1n;

describe('virtioIommu device spec', () => {
  it('refuses a MAP granule below the 4 KiB pages its DMA engines translate', () => {
    const make = (pageSizeMask: bigint) => () => virtioIommu({ endpoints: [{ id: 1 }], pageSizeMask });
    for (const mask of [0xffff_ffff_ffff_fe00n, 0x1n, 0x1000n | 0x800n]) {
      expect(make(mask)).toThrow(VmmError);
      expect(make(mask)).toThrow(/pageSizeMask .* smaller than the 4 KiB pages.*clear its bits below bit 12/);
    }
    for (const mask of [0xffff_ffff_ffff_f000n, 0x20_1000n, 0xffff_ffff_ffff_0000n]) {
      expect(make(mask)).not.toThrow();
    }
  });
});

describe('virtioIommuTranslator', () => {
  async function fineGrained() {
    const h = createVirtioIommuHarness({
      endpoints: [{ id: 1 }],
      bypass: false,
      pageSizeMask: ~0x1ffn & U64_MAX,
    });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    const map = async (virtStart: bigint, virtEnd: bigint, physStart: bigint) =>
      expect(
        await requestStatus(h, encodeMap({ domain: 1, virtStart, virtEnd, physStart, flags: MapFlag.READ })),
      ).toBe(Status.OK);
    return { h, map, translator: virtioIommuTranslator(h.device), page: createDmaPage() };
  }

  it('hands out a page only when all of its 4 KiB translate, and reports the piece that faults', async () => {
    const { h, map, translator, page } = await fineGrained();
    await map(0x1000n, 0x11ffn, 0x4000_0000n);
    expect(translator.translatePage(1, NO_PASID, 1, DmaAccess.READ, page)).toBe(false);
    expect(page.fault).toBe(FaultReason.MAPPING);
    // The report names the first byte the device could not reach.
    expect(h.events()).toMatchObject([{ address: 0x1200n }]);
    // The run call leaves such a page to translatePage.
    expect(translator.translatePages!(1, NO_PASID, 1, 1, DmaAccess.READ, new Float64Array(1))).toBe(0);
  });

  it('takes a page mapped in contiguous pieces, and refuses one mapped in scattered pieces', async () => {
    const { map, translator, page } = await fineGrained();
    await map(0x1000n, 0x11ffn, 0x4000_0000n);
    await map(0x1200n, 0x1fffn, 0x4000_0200n);
    expect(translator.translatePage(1, NO_PASID, 1, DmaAccess.READ, page)).toBe(true);
    expect(page.pa).toBe(0x4000_0000);
    await map(0x2000n, 0x21ffn, 0x4000_2000n);
    await map(0x2200n, 0x2dffn, 0x4100_0000n);
    await map(0x2e00n, 0x2fffn, 0x4000_2e00n);
    expect(translator.translatePage(1, NO_PASID, 2, DmaAccess.READ, page)).toBe(false);
  });
});
