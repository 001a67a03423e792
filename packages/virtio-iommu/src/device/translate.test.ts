import { DmaAccess, NO_PASID } from '@vmmkit/core';
import { describe, expect, it } from 'vitest';
import {
  ATTACH_F_BYPASS,
  FaultFlag,
  FaultReason,
  IommuFeature,
  MapFlag,
  Status,
} from '../protocol/constants.js';
import { encodeAttach, encodeMap, encodeUnmap } from '../protocol/requests.js';
import { createVirtioIommuHarness, requestStatus, type VirtioIommuHarnessOptions } from '../testing/index.js';
import { createPageTranslation } from './translator.js';

/** DMA translation (PROTOCOL.md "Translation of a DMA", reference §3.8) and fault reports (§5.1). */

const endpoints = [
  {
    id: 8,
    reservedRegions: [
      { start: 0xfee0_0000n, end: 0xfeef_ffffn, subtype: 'msi' as const },
      { start: 0x7000n, end: 0x7fffn, subtype: 'reserved' as const },
    ],
  },
  { id: 9 },
];

async function mapped(options: VirtioIommuHarnessOptions = {}) {
  const h = createVirtioIommuHarness({ endpoints, bypass: false, ...options });
  expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 8 }))).toBe(Status.OK);
  const maps: [number, number, number, number][] = [
    [0x1000, 0x1fff, 0x4_0000, MapFlag.READ],
    [0x2000, 0x2fff, 0x9_0000, MapFlag.READ | MapFlag.WRITE],
    [0x3000, 0x4fff, 0x5_0000, MapFlag.WRITE],
    [0x5000, 0x5fff, 0x800_0000, MapFlag.WRITE | MapFlag.MMIO],
  ];
  for (const [virtStart, virtEnd, physStart, flags] of maps) {
    expect(await requestStatus(h, encodeMap({ domain: 1, virtStart, virtEnd, physStart, flags }))).toBe(
      Status.OK,
    );
  }
  return h;
}

describe('translate', () => {
  it('splits a DMA over several mappings into guest-physical segments', async () => {
    const h = await mapped();
    const result = h.device.translate({ endpoint: 8, iova: 0x1ff0, length: 0x20, access: 'read' });
    expect(result).toEqual({
      ok: true,
      segments: [
        { iova: 0x1ff0n, address: 0x4_0ff0n, length: 0x10, mmio: false },
        { iova: 0x2000n, address: 0x9_0000n, length: 0x10, mmio: false },
      ],
    });
  });

  it('checks permissions: writes need WRITE, reads need READ', async () => {
    const h = await mapped();
    expect(h.translate({ endpoint: 8, iova: 0x1800n, access: 'write' })).toMatchObject({
      ok: false,
      fault: {
        reason: FaultReason.MAPPING,
        flags: FaultFlag.WRITE | FaultFlag.ADDRESS,
        endpoint: 8,
        address: 0x1800n,
      },
    });
    expect(h.translate({ endpoint: 8, iova: 0x3000n, access: 'read' }).ok).toBe(false);
    expect(h.translate({ endpoint: 8, iova: 0x4fffn, access: 'write' })).toEqual({
      ok: true,
      address: 0x5_1fffn,
    });
    expect(h.translate({ endpoint: 8, iova: 0x5008n, access: 'write' })).toEqual({
      ok: true,
      address: 0x800_0008n,
    });
    expect(h.device.translate({ endpoint: 8, iova: 0x5008n, access: 'write' })).toMatchObject({
      segments: [{ address: 0x800_0008n, mmio: true }],
    });
  });

  it('faults on unmapped addresses, reserved regions and DMA with a PASID; MSI regions pass', async () => {
    const h = await mapped();
    expect(h.translate({ endpoint: 8, iova: 0x6000n, access: 'read' })).toMatchObject({
      fault: { reason: FaultReason.MAPPING },
    });
    expect(h.translate({ endpoint: 8, iova: 0x7008n, access: 'read' })).toMatchObject({
      fault: { reason: FaultReason.MAPPING },
    });
    expect(h.translate({ endpoint: 8, iova: 0xfee0_1000n, access: 'write' })).toEqual({
      ok: true,
      address: 0xfee0_1000n,
    });
    expect(h.translate({ endpoint: 8, iova: 0x1000n, access: 'read', pasid: 3 })).toMatchObject({
      fault: {
        reason: FaultReason.UNKNOWN,
        flags: FaultFlag.READ | FaultFlag.ADDRESS | FaultFlag.PASID,
        pasid: 3,
      },
    });
  });

  it('unattached endpoints: bypass when set; otherwise R_DOMAIN, and R_UNKNOWN for unknown endpoints', async () => {
    const h = await mapped();
    expect(h.translate({ endpoint: 9, iova: 0x1000n, access: 'read' })).toMatchObject({
      fault: { reason: FaultReason.DOMAIN },
    });
    expect(h.translate({ endpoint: 77, iova: 0x1000n, access: 'read' })).toMatchObject({
      fault: { reason: FaultReason.UNKNOWN },
    });
    const open = await mapped({ bypass: true });
    expect(open.translate({ endpoint: 77, iova: 0xffff_ffff_ffff_fff0n, access: 'write' })).toEqual({
      ok: true,
      address: 0xffff_ffff_ffff_fff0n,
    });
  });

  it('legacy F_BYPASS makes unattached endpoints bypass once negotiated', async () => {
    const h = createVirtioIommuHarness({
      endpoints,
      bypass: false,
      features: { bypass: true, bypassConfig: false },
    });
    // The harness negotiates like Linux, which does not ask for legacy BYPASS: no bypass.
    expect(h.translate({ endpoint: 9, iova: 0x1000n, access: 'read' }).ok).toBe(false);
    // A driver that accepts it gets bypass for unattached endpoints.
    expect(h.device.acceptFeatures(h.guest.features | (1n << BigInt(IommuFeature.BYPASS)))).toBe(true);
    expect(h.translate({ endpoint: 9, iova: 0x1000n, access: 'read' })).toMatchObject({
      ok: true,
      address: 0x1000n,
    });
  });

  it('bypass domains are identity', async () => {
    const h = createVirtioIommuHarness({ endpoints, bypass: false });
    expect(await requestStatus(h, encodeAttach({ domain: 5, endpoint: 9, flags: ATTACH_F_BYPASS }))).toBe(
      Status.OK,
    );
    expect(h.translate({ endpoint: 9, iova: 0x1234_5678n, access: 'write' })).toMatchObject({
      ok: true,
      address: 0x1234_5678n,
    });
  });

  it('a cached translation never outlives its mapping', async () => {
    const h = await mapped();
    const out = createPageTranslation();
    expect(h.device.translatePage(8, NO_PASID, 0x2010, DmaAccess.READ, out)).toBe(true);
    expect(out.pa).toBe(0x9_0010);
    expect(await requestStatus(h, encodeUnmap({ domain: 1, virtStart: 0x2000, virtEnd: 0x2fff }))).toBe(
      Status.OK,
    );
    expect(h.device.translatePage(8, NO_PASID, 0x2010, DmaAccess.READ, out)).toBe(false);
    // The freed slot is reused by the next MAP, at another address and another target.
    const remap = encodeMap({
      domain: 1,
      virtStart: 0x10_2000,
      virtEnd: 0x10_2fff,
      physStart: 0x7_0000,
      flags: 1,
    });
    expect(await requestStatus(h, remap)).toBe(Status.OK);
    expect(h.device.translatePage(8, NO_PASID, 0x2010, DmaAccess.READ, out)).toBe(false);
    const back = encodeMap({ domain: 1, virtStart: 0x2000, virtEnd: 0x2fff, physStart: 0xa_0000, flags: 1 });
    expect(await requestStatus(h, back)).toBe(Status.OK);
    expect(h.device.translatePage(8, NO_PASID, 0x2010, DmaAccess.READ, out)).toBe(true);
    expect(out.pa).toBe(0xa_0010);
  });

  it('translatePage is allocation-free and reports the bytes left in the mapping', async () => {
    const h = await mapped();
    const out = createPageTranslation();
    expect(h.device.translatePage(8, NO_PASID, 0x3ff0, DmaAccess.WRITE, out)).toBe(true);
    expect(out).toMatchObject({ pa: 0x5_0ff0, length: 0x1010 });
    expect(h.device.translatePage(8, NO_PASID, 0x3ff0, DmaAccess.READ, out)).toBe(false);
    expect(out.reason).toBe(FaultReason.MAPPING);
  });

  it('reports faults as 24-byte events on the event queue, drops and counts them when no buffer is posted', async () => {
    const h = await mapped({ eventBuffers: 2 });
    const seen: unknown[] = [];
    h.device.on('fault', (e) => seen.push(e));
    for (let i = 0; i < 5; i++) h.translate({ endpoint: 8, iova: 0x6000n + BigInt(i), access: 'read' });
    expect(h.device.faultStats).toEqual({ raised: 5, delivered: 2, dropped: 3, shortBuffers: 0 });
    expect(seen).toHaveLength(5);
    expect(seen[4]).toMatchObject({ delivered: false });
    expect(h.events()).toEqual([
      {
        reason: FaultReason.MAPPING,
        flags: FaultFlag.READ | FaultFlag.ADDRESS,
        endpoint: 8,
        address: 0x6000n,
      },
      {
        reason: FaultReason.MAPPING,
        flags: FaultFlag.READ | FaultFlag.ADDRESS,
        endpoint: 8,
        address: 0x6001n,
      },
    ]);
    // Buffers were re-posted: the next fault is delivered again.
    h.translate({ endpoint: 8, iova: 0x6005n, access: 'write' });
    expect(h.events()).toEqual([
      {
        reason: FaultReason.MAPPING,
        flags: FaultFlag.WRITE | FaultFlag.ADDRESS,
        endpoint: 8,
        address: 0x6005n,
      },
    ]);
  });

  it('a fault storm without buffers keeps no host state', async () => {
    const h = await mapped({ eventBuffers: 0 });
    const out = createPageTranslation();
    for (let i = 0; i < 10_000; i++) h.device.translatePage(8, NO_PASID, 0x6000 + i, DmaAccess.READ, out);
    expect(h.device.faultStats).toMatchObject({ raised: 10_000, delivered: 0, dropped: 10_000 });
    expect(h.events()).toEqual([]);
  });

  it('explain() lists every decision without reporting a fault', async () => {
    const h = await mapped();
    expect(h.device.explain({ endpoint: 8, iova: 0x2010n, access: 'write' })).toEqual([
      { label: 'endpoint', value: 'domain 1 (map)', fields: { endpoint: 8, pasid: 'none', bypass: false } },
      { label: 'mapping', value: '0x2000-0x2fff → 0x90000', fields: { flags: 3, mappings: 4 } },
      { label: 'result', value: '0x90010 (4080 bytes valid)' },
    ]);
    expect(h.device.explain({ endpoint: 8, iova: 0x7000n, access: 'read' })).toEqual([
      { label: 'endpoint', value: 'domain 1 (map)', fields: { endpoint: 8, pasid: 'none', bypass: false } },
      { label: 'reserved region', value: 'RESERVED 0x7000-0x7fff' },
      { label: 'result', value: 'fault MAPPING, flags 0x101' },
    ]);
    expect(h.device.explain({ endpoint: 9, iova: 0n, access: 'read' }).at(-1)).toEqual({
      label: 'result',
      value: 'fault DOMAIN, flags 0x101',
    });
    expect(h.device.faultStats.raised).toBe(0);
    expect(h.events()).toEqual([]);
  });

  it('refuses bad API arguments with a VmmError', async () => {
    const h = await mapped();
    expect(() => h.device.translate({ endpoint: -1, iova: 0, access: 'read' })).toThrow(/endpoint/);
    expect(() => h.device.translate({ endpoint: 8, iova: -1, access: 'read' })).toThrow(/iova/);
    expect(() => h.device.translate({ endpoint: 8, iova: 0, length: 0, access: 'read' })).toThrow(/length/);
    expect(() => h.device.translate({ endpoint: 8, iova: 0, access: 'fetch' as 'read' })).toThrow(/access/);
  });
});
