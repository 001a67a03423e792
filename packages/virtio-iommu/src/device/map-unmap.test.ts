import { describe, expect, it } from 'vitest';
import { ATTACH_F_BYPASS, MapFlag, Status } from '../protocol/constants.js';
import { encodeAttach, encodeMap, encodeUnmap } from '../protocol/requests.js';
import { U64_MAX } from '../protocol/u64.js';
import {
  createVirtioIommuHarness,
  requestStatus,
  type VirtioIommuHarness,
  type VirtioIommuHarnessOptions,
} from '../testing/index.js';

/** MAP and UNMAP statuses: reference §3.4 and §3.5 (virtio 1.2 §5.13.6.5-6). */

const RW = MapFlag.READ | MapFlag.WRITE;

async function withDomain(options: VirtioIommuHarnessOptions = {}): Promise<VirtioIommuHarness> {
  const h = createVirtioIommuHarness({
    endpoints: [
      { id: 1, reservedRegions: [{ start: 0x8000_0000n, end: 0x8000_ffffn, subtype: 'reserved' }] },
      { id: 2 },
    ],
    ...options,
  });
  expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
  return h;
}

const map = (
  virtStart: bigint | number,
  virtEnd: bigint | number,
  physStart: bigint | number = 0x10_0000,
  flags = RW,
  domain = 1,
) => encodeMap({ domain, virtStart, virtEnd, physStart, flags });
const unmap = (virtStart: bigint | number, virtEnd: bigint | number, domain = 1) =>
  encodeUnmap({ domain, virtStart, virtEnd });

describe('MAP', () => {
  it('unknown flags are S_INVAL; MMIO needs F_MMIO', async () => {
    const h = await withDomain();
    expect(await requestStatus(h, map(0x1000, 0x1fff, 0, 8))).toBe(Status.INVAL);
    expect(await requestStatus(h, map(0x1000, 0x1fff, 0, MapFlag.MMIO | MapFlag.WRITE))).toBe(Status.OK);
    const noMmio = await withDomain({ features: { mmio: false } });
    expect(await requestStatus(noMmio, map(0x1000, 0x1fff, 0, MapFlag.MMIO | MapFlag.WRITE))).toBe(
      Status.INVAL,
    );
    expect(noMmio.device.mappingCount).toBe(0);
  });

  it('a domain that does not exist is S_NOENT, one outside domain_range S_RANGE', async () => {
    const h = await withDomain({ domainRange: { start: 0, end: 100 } });
    expect(await requestStatus(h, map(0x1000, 0x1fff, 0, RW, 2))).toBe(Status.NOENT);
    expect(await requestStatus(h, map(0x1000, 0x1fff, 0, RW, 101))).toBe(Status.RANGE);
  });

  it('a bypass domain is S_INVAL', async () => {
    const h = await withDomain();
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 2, flags: ATTACH_F_BYPASS }))).toBe(
      Status.OK,
    );
    expect(await requestStatus(h, map(0x1000, 0x1fff, 0, RW, 2))).toBe(Status.INVAL);
    expect(await requestStatus(h, unmap(0x1000, 0x1fff, 2))).toBe(Status.INVAL);
  });

  it('virt_end not above virt_start is S_RANGE', async () => {
    const h = await withDomain({ pageSizeMask: U64_MAX });
    expect(await requestStatus(h, map(0x2000, 0x1fff))).toBe(Status.RANGE);
    expect(await requestStatus(h, map(0x2000, 0x2000))).toBe(Status.RANGE);
  });

  it('start, end + 1 or phys not aligned to the granule is S_RANGE', async () => {
    const h = await withDomain({ pageSizeMask: 0xffff_ffff_ffff_0000n }); // 64 KiB granule
    expect(await requestStatus(h, map(0x1000, 0x1_0fff))).toBe(Status.RANGE);
    expect(await requestStatus(h, map(0x1_0000, 0x1_efff))).toBe(Status.RANGE);
    expect(await requestStatus(h, map(0x1_0000, 0x1_ffff, 0x1000))).toBe(Status.RANGE);
    expect(await requestStatus(h, map(0x1_0000, 0x1_ffff, 0x2_0000))).toBe(Status.OK);
  });

  it('granules of 2^32 and more are checked on both halves', async () => {
    const h = await withDomain({ pageSizeMask: 1n << 33n });
    expect(await requestStatus(h, map(1n << 32n, (3n << 32n) - 1n, 0))).toBe(Status.RANGE);
    expect(await requestStatus(h, map(1n << 33n, (2n << 33n) - 2n, 0))).toBe(Status.RANGE);
    expect(await requestStatus(h, map(1n << 33n, (2n << 33n) - 1n, 0))).toBe(Status.OK);
  });

  it('outside input_range is S_RANGE', async () => {
    const h = await withDomain({ inputRange: { start: 0x1_0000n, end: 0xffff_ffffn } });
    expect(await requestStatus(h, map(0xf000, 0x1_0fff))).toBe(Status.RANGE);
    expect(await requestStatus(h, map(0xffff_f000, 0x1_0000_0fff))).toBe(Status.RANGE);
    expect(await requestStatus(h, map(0xffff_f000, 0xffff_ffff))).toBe(Status.OK);
  });

  it('an overlap with an existing mapping is S_INVAL, adjacent ranges are fine', async () => {
    const h = await withDomain();
    expect(await requestStatus(h, map(0x4000, 0x7fff))).toBe(Status.OK);
    for (const [s, e] of [
      [0x3000, 0x4fff],
      [0x7000, 0x8fff],
      [0x5000, 0x5fff],
      [0x0, 0xf_ffff],
    ]) {
      expect(await requestStatus(h, map(s!, e!))).toBe(Status.INVAL);
    }
    expect(await requestStatus(h, map(0x3000, 0x3fff))).toBe(Status.OK);
    expect(await requestStatus(h, map(0x8000, 0x8fff))).toBe(Status.OK);
    expect(h.device.mappingCount).toBe(3);
  });

  it('a range over a RESV_MEM region of an attached endpoint is S_INVAL', async () => {
    const h = await withDomain();
    expect(await requestStatus(h, map(0x7fff_f000, 0x8000_0fff))).toBe(Status.INVAL);
    expect(await requestStatus(h, map(0x8000_f000, 0x8001_0fff))).toBe(Status.INVAL);
    expect(await requestStatus(h, map(0x8001_0000, 0x8001_0fff))).toBe(Status.OK);
  });

  it('a physical range passing 2^64 - 1 is S_RANGE', async () => {
    const h = await withDomain();
    expect(await requestStatus(h, map(0x1000, 0x2fff, U64_MAX - 0xfffn))).toBe(Status.RANGE);
    expect(await requestStatus(h, map(0x1000, 0x1fff, U64_MAX - 0xfffn))).toBe(Status.OK);
  });

  it('more mappings than maxMappingsPerDomain is S_NOMEM', async () => {
    const h = await withDomain({ maxMappingsPerDomain: 2 });
    expect(await requestStatus(h, map(0x1000, 0x1fff))).toBe(Status.OK);
    expect(await requestStatus(h, map(0x2000, 0x2fff))).toBe(Status.OK);
    expect(await requestStatus(h, map(0x3000, 0x3fff))).toBe(Status.NOMEM);
    expect(await requestStatus(h, unmap(0x1000, 0x1fff))).toBe(Status.OK);
    expect(await requestStatus(h, map(0x3000, 0x3fff))).toBe(Status.OK);
  });

  it('more mappings than maxMappings over all domains is S_NOMEM', async () => {
    const h = await withDomain({ maxMappings: 2 });
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 2 }))).toBe(Status.OK);
    expect(await requestStatus(h, map(0x1000, 0x1fff))).toBe(Status.OK);
    expect(await requestStatus(h, map(0x1000, 0x1fff, 0, RW, 2))).toBe(Status.OK);
    expect(await requestStatus(h, map(0x2000, 0x2fff, 0, RW, 2))).toBe(Status.NOMEM);
  });

  it('maps the top of the 64-bit space exactly', async () => {
    const h = await withDomain();
    const top = U64_MAX - 0x1fffn;
    expect(await requestStatus(h, map(top, U64_MAX, 0x1234_5000))).toBe(Status.OK);
    expect(h.translate({ endpoint: 1, iova: U64_MAX, access: 'write' })).toEqual({
      ok: true,
      address: 0x1234_5000n + 0x1fffn,
    });
    expect(h.translate({ endpoint: 1, iova: top - 1n, access: 'read' }).ok).toBe(false);
    // Two mappings that differ only above bit 53 stay distinct.
    expect(await requestStatus(h, map(1n << 60n, (1n << 60n) + 0xfffn, 0xa000))).toBe(Status.OK);
    expect(
      await requestStatus(h, map((1n << 60n) + (1n << 54n), (1n << 60n) + (1n << 54n) + 0xfffn, 0xb000)),
    ).toBe(Status.OK);
    expect(h.translate({ endpoint: 1, iova: (1n << 60n) + 5n, access: 'read' })).toMatchObject({
      address: 0xa005n,
    });
    expect(h.translate({ endpoint: 1, iova: (1n << 60n) + (1n << 54n) + 5n, access: 'read' })).toMatchObject({
      address: 0xb005n,
    });
  });
});

describe('UNMAP', () => {
  it('non-zero reserved bytes are S_INVAL and nothing is removed', async () => {
    const h = await withDomain();
    expect(await requestStatus(h, map(0x1000, 0x1fff))).toBe(Status.OK);
    expect(
      await requestStatus(h, encodeUnmap({ domain: 1, virtStart: 0x1000, virtEnd: 0x1fff, reserved: 1 })),
    ).toBe(Status.INVAL);
    expect(h.device.mappingCount).toBe(1);
  });

  it('a domain that does not exist is S_NOENT, one outside domain_range S_RANGE', async () => {
    const h = await withDomain({ domainRange: { start: 0, end: 100 } });
    expect(await requestStatus(h, unmap(0x1000, 0x1fff, 9))).toBe(Status.NOENT);
    expect(await requestStatus(h, unmap(0x1000, 0x1fff, 101))).toBe(Status.RANGE);
  });

  it('a mapping that would be split is S_RANGE and no mapping at all is removed', async () => {
    const h = await withDomain();
    for (const [s, e] of [
      [0x1000, 0x1fff],
      [0x2000, 0x3fff],
      [0x4000, 0x4fff],
    ]) {
      expect(await requestStatus(h, map(s!, e!))).toBe(Status.OK);
    }
    // Covers [0x1000, 0x1fff] fully but cuts [0x2000, 0x3fff]: nothing may go.
    expect(await requestStatus(h, unmap(0x0, 0x2fff))).toBe(Status.RANGE);
    expect(await requestStatus(h, unmap(0x3000, 0x4fff))).toBe(Status.RANGE);
    expect(h.device.mappingCount).toBe(3);
    expect(await requestStatus(h, unmap(0x0, 0xffff_ffff))).toBe(Status.OK);
    expect(h.device.mappingCount).toBe(0);
  });

  it('a range over holes removes what it covers; virt_end below virt_start is S_RANGE', async () => {
    const h = await withDomain();
    expect(await requestStatus(h, map(0x1000, 0x1fff))).toBe(Status.OK);
    expect(await requestStatus(h, map(0x5000, 0x5fff))).toBe(Status.OK);
    expect(await requestStatus(h, unmap(0x2000, 0x1000))).toBe(Status.RANGE);
    expect(await requestStatus(h, unmap(0x0, 0x4fff))).toBe(Status.OK);
    expect(h.device.domains()[0]!.mappings).toBe(1);
    expect(await requestStatus(h, unmap(0x0, U64_MAX))).toBe(Status.OK);
    expect(h.device.mappingCount).toBe(0);
  });

  it('emits map and unmap events with exact 64-bit bounds', async () => {
    const h = await withDomain();
    const events: unknown[] = [];
    h.device.on('map', (e) => events.push(['map', e]));
    h.device.on('unmap', (e) => events.push(['unmap', e]));
    expect(await requestStatus(h, map(U64_MAX - 0xfffn, U64_MAX, 0x3000, MapFlag.READ))).toBe(Status.OK);
    expect(await requestStatus(h, unmap(0, U64_MAX))).toBe(Status.OK);
    expect(events).toEqual([
      [
        'map',
        { domain: 1, virtStart: U64_MAX - 0xfffn, virtEnd: U64_MAX, physStart: 0x3000n, flags: MapFlag.READ },
      ],
      ['unmap', { domain: 1, virtStart: 0n, virtEnd: U64_MAX, removed: 1 }],
    ]);
  });
});
