import { DmaAccess, NO_PASID } from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import { FaultReason, MapFlag, Status } from '../protocol/constants.js';
import { encodeAttach, encodeMap } from '../protocol/requests.js';
import { createVirtioIommuHarness, requestStatus } from '../testing/index.js';
import { PageCache } from './page-cache.js';
import { createPageTranslation } from './translator.js';

const U64_MAX = (1n << 64n) - 1n;

describe('PageCache', () => {
  it('answers only for the endpoint, page and permission it was given', () => {
    const cache = new PageCache();
    const out = createPageTranslation();
    cache.insert(3, 0x1_0002, 0x8000_0000, 0x3000, MapFlag.READ | MapFlag.MMIO);
    expect(cache.lookup(3, 0x1_0002, 0x10, MapFlag.READ, out)).toBe(true);
    expect(out).toMatchObject({ pa: 0x8000_0010, paLo: 0x8000_0010, paHi: 0, length: 0x2ff0, mmio: true });
    expect(cache.lookup(4, 0x1_0002, 0, MapFlag.READ, out)).toBe(false);
    expect(cache.lookup(3, 0x1_0003, 0, MapFlag.READ, out)).toBe(false);
    expect(cache.lookup(3, 0x1_0002, 0, MapFlag.WRITE, out)).toBe(false);
  });

  it('copies runs of consecutive pages, also across a 4 GiB boundary, and stops at the first miss', () => {
    const cache = new PageCache();
    const first = 2 ** 20 - 2; // the last two pages below 4 GiB, then the first two above
    for (let i = 0; i < 4; i++) cache.insert(1, first + i, 0x4000_0000 + i * 0x1000, 0x1000, MapFlag.WRITE);
    const pas = new Float64Array(6);
    expect(cache.copyRun(1, first, 6, MapFlag.WRITE, pas, 1)).toBe(2);
    expect(cache.copyRun(1, first + 2, 4, MapFlag.WRITE, pas, 3)).toBe(2);
    expect([...pas.subarray(1, 5)]).toEqual([0x4000_0000, 0x4000_1000, 0x4000_2000, 0x4000_3000]);
    expect(cache.copyRun(1, first, 4, MapFlag.READ, pas, 0)).toBe(0);
  });

  it('forgets everything on invalidate(), also when its epoch counter wraps', () => {
    const cache = new PageCache();
    const out = createPageTranslation();
    cache.insert(1, 7, 0x1000, 0x1000, MapFlag.READ);
    cache.invalidate();
    expect(cache.lookup(1, 7, 0, MapFlag.READ, out)).toBe(false);
    cache.insert(1, 7, 0x1000, 0x1000, MapFlag.READ);
    // Past 2^18 invalidations the epoch starts over: nothing from before may match again.
    let matched = 0;
    for (let i = 0; i < 2 ** 18 + 5; i++) {
      cache.invalidate();
      if (cache.lookup(1, 7, 0, MapFlag.READ, out)) matched++;
    }
    expect(matched).toBe(0);
  });
});

describe('translation of page runs', () => {
  async function withMappings(pageSizeMask?: bigint) {
    const h = createVirtioIommuHarness({
      endpoints: [{ id: 1, reservedRegions: [{ start: 0x5800n, end: 0x5fffn, subtype: 'reserved' }] }],
      bypass: false,
      ...(pageSizeMask === undefined ? {} : { pageSizeMask }),
    });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    return h;
  }

  it('translates the leading pages that translate and reports no fault for the one that stops it', async () => {
    const h = await withMappings();
    const map = encodeMap({
      domain: 1,
      virtStart: 0x1000n,
      virtEnd: 0x3fffn,
      physStart: 0x20_0000n,
      flags: MapFlag.READ,
    });
    expect(await requestStatus(h, map)).toBe(Status.OK);
    const pas = new Float64Array(8);
    expect(h.device.translateIovaPages(1, NO_PASID, 1, 8, DmaAccess.READ, pas)).toBe(3);
    expect([...pas.subarray(0, 3)]).toEqual([0x20_0000, 0x20_1000, 0x20_2000]);
    // Pages that do not allow the access stop the run at once.
    expect(h.device.translateIovaPages(1, NO_PASID, 1, 8, DmaAccess.WRITE, pas)).toBe(0);
    expect(h.device.faultStats.raised).toBe(0);
    // The device that reaches page 4 asks for it alone, and that is reported.
    const out = createPageTranslation();
    expect(h.device.translateIovaPage(1, NO_PASID, 4, DmaAccess.READ, out)).toBe(false);
    expect(out.reason).toBe(FaultReason.MAPPING);
    expect(h.device.faultStats.raised).toBe(1);
    expect(h.events()).toHaveLength(1);
  });

  it('never extends a mapping smaller than a page to the rest of that page', async () => {
    const h = await withMappings(U64_MAX & ~0x1ffn);
    const half = encodeMap({
      domain: 1,
      virtStart: 0x1000n,
      virtEnd: 0x11ffn,
      physStart: 0x30_0000n,
      flags: MapFlag.READ,
    });
    expect(await requestStatus(h, half)).toBe(Status.OK);
    const out = createPageTranslation();
    for (let round = 0; round < 2; round++) {
      expect(h.device.translatePage(1, NO_PASID, 0x1100, DmaAccess.READ, out)).toBe(true);
      expect(out).toMatchObject({ pa: 0x30_0100, length: 0x100 });
      expect(h.device.translatePage(1, NO_PASID, 0x1200, DmaAccess.READ, out)).toBe(false);
    }
  });

  it('never lets a page that a reserved region shares answer for the region', async () => {
    const h = await withMappings(U64_MAX & ~0x1ffn);
    // The lower half of page 5 is mapped; the upper half is the endpoint's reserved region.
    const below = encodeMap({
      domain: 1,
      virtStart: 0x5000n,
      virtEnd: 0x57ffn,
      physStart: 0x40_0000n,
      flags: MapFlag.READ,
    });
    expect(await requestStatus(h, below)).toBe(Status.OK);
    const out = createPageTranslation();
    const pas = new Float64Array(1);
    for (let round = 0; round < 2; round++) {
      // Half a page is not a page a DMA may move whole.
      expect(h.device.translateIovaPages(1, NO_PASID, 5, 1, DmaAccess.READ, pas)).toBe(0);
      expect(h.device.translatePage(1, NO_PASID, 0x5010, DmaAccess.READ, out)).toBe(true);
      expect(h.device.translatePage(1, NO_PASID, 0x5810, DmaAccess.READ, out)).toBe(false);
      expect(out.reason).toBe(FaultReason.MAPPING);
    }
  });
});
