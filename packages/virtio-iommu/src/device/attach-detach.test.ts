import { describe, expect, it } from 'vitest';
import { ATTACH_F_BYPASS, MapFlag, Status } from '../protocol/constants.js';
import { encodeAttach, encodeDetach, encodeMap } from '../protocol/requests.js';
import { createVirtioIommuHarness, requestStatus } from '../testing/index.js';

/** ATTACH and DETACH statuses: reference §3.2 and §3.3 (virtio 1.2 §5.13.6.3-4). */

const msi = { start: 0xfee0_0000n, end: 0xfeef_ffffn, subtype: 'msi' as const };
const endpoints = [
  { id: 1 },
  { id: 2 },
  { id: 3, reservedRegions: [{ start: 0x8000n, end: 0x8fffn, subtype: 'reserved' as const }] },
];
const map = (domain: number, virtStart: number, size = 0x1000) =>
  encodeMap({ domain, virtStart, virtEnd: virtStart + size - 1, physStart: 0x10_0000, flags: MapFlag.READ });

describe('ATTACH', () => {
  it('non-zero reserved bytes are S_INVAL and attach nothing', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1, reserved: 0x100 }))).toBe(
      Status.INVAL,
    );
    expect(h.device.endpointDomain(1)).toBeNull();
  });

  it('unknown flags are S_INVAL; BYPASS needs F_BYPASS_CONFIG', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1, flags: 2 }))).toBe(Status.INVAL);
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1, flags: 0x8000_0000 }))).toBe(
      Status.INVAL,
    );
    const without = createVirtioIommuHarness({ endpoints, features: { bypassConfig: false } });
    expect(
      await requestStatus(without, encodeAttach({ domain: 1, endpoint: 1, flags: ATTACH_F_BYPASS })),
    ).toBe(Status.INVAL);
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1, flags: ATTACH_F_BYPASS }))).toBe(
      Status.OK,
    );
    expect(h.device.domains()).toEqual([{ id: 1, kind: 'bypass', endpoints: [1], mappings: 0 }]);
  });

  it('an unknown endpoint is S_NOENT', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 9 }))).toBe(Status.NOENT);
    expect(h.device.domains()).toEqual([]);
  });

  it('a domain outside domain_range is S_RANGE', async () => {
    const h = createVirtioIommuHarness({ endpoints, domainRange: { start: 4, end: 7 } });
    expect(await requestStatus(h, encodeAttach({ domain: 3, endpoint: 1 }))).toBe(Status.RANGE);
    expect(await requestStatus(h, encodeAttach({ domain: 8, endpoint: 1 }))).toBe(Status.RANGE);
    expect(await requestStatus(h, encodeAttach({ domain: 7, endpoint: 1 }))).toBe(Status.OK);
  });

  it('a BYPASS flag inconsistent with the existing domain is S_INVAL', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 2, flags: ATTACH_F_BYPASS }))).toBe(
      Status.INVAL,
    );
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 2, flags: ATTACH_F_BYPASS }))).toBe(
      Status.OK,
    );
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 1 }))).toBe(Status.INVAL);
  });

  it('an endpoint whose reserved region a domain mapping covers is S_UNSUPP', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    expect(await requestStatus(h, map(1, 0x8000))).toBe(Status.OK);
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 3 }))).toBe(Status.UNSUPP);
    expect(h.device.endpointDomain(3)).toBeNull();
  });

  it('moves an attached endpoint implicitly; the old domain dies with its last endpoint and its mappings', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    const detaches: unknown[] = [];
    h.device.on('detach', (e) => detaches.push(e));
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    expect(await requestStatus(h, map(1, 0x1000))).toBe(Status.OK);
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 1 }))).toBe(Status.OK);
    expect(detaches).toEqual([{ domain: 1, endpoint: 1, destroyed: true, cause: 'implicit' }]);
    expect(h.device.mappingCount).toBe(0);
    expect(await requestStatus(h, map(1, 0x1000))).toBe(Status.NOENT);
    // A re-created domain 1 starts empty.
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 2 }))).toBe(Status.OK);
    expect(await requestStatus(h, map(1, 0x1000))).toBe(Status.OK);
  });

  it('a domain lives while any endpoint remains', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 2 }))).toBe(Status.OK);
    expect(await requestStatus(h, map(1, 0x1000))).toBe(Status.OK);
    expect(await requestStatus(h, encodeDetach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    expect(h.device.domains()).toEqual([{ id: 1, kind: 'map', endpoints: [2], mappings: 1 }]);
    expect(h.translate({ endpoint: 2, iova: 0x1004n, access: 'read' })).toEqual({
      ok: true,
      address: 0x10_0004n,
    });
  });

  it('re-attaching to the same domain is S_OK and keeps the mappings', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    expect(await requestStatus(h, map(1, 0x1000))).toBe(Status.OK);
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    expect(h.device.domains()).toEqual([{ id: 1, kind: 'map', endpoints: [1], mappings: 1 }]);
  });

  it('creating more domains than maxDomains is S_NOMEM; a move that frees one still fits', async () => {
    const h = createVirtioIommuHarness({ endpoints, maxDomains: 2 });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 2 }))).toBe(Status.OK);
    expect(await requestStatus(h, encodeAttach({ domain: 3, endpoint: 3 }))).toBe(Status.NOMEM);
    expect(h.device.endpointDomain(3)).toBeNull();
    // Endpoint 2 leaves domain 2 (which dies) for the new domain 3: still two domains.
    expect(await requestStatus(h, encodeAttach({ domain: 3, endpoint: 2 }))).toBe(Status.OK);
    expect(h.device.domains().map((d) => d.id)).toEqual([1, 3]);
  });
});

describe('DETACH', () => {
  it('an unknown endpoint is S_NOENT', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    expect(await requestStatus(h, encodeDetach({ domain: 1, endpoint: 7 }))).toBe(Status.NOENT);
  });

  it('an unknown domain, or one the endpoint is not in, is S_INVAL', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    expect(await requestStatus(h, encodeDetach({ domain: 1, endpoint: 1 }))).toBe(Status.INVAL);
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 2 }))).toBe(Status.OK);
    expect(await requestStatus(h, encodeDetach({ domain: 2, endpoint: 1 }))).toBe(Status.INVAL);
    expect(h.device.endpointDomain(1)).toBe(1);
  });

  it('ignores the reserved bytes', async () => {
    const h = createVirtioIommuHarness({ endpoints });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    const request = encodeDetach({ domain: 1, endpoint: 1 });
    request.fill(0xff, 12, 20);
    expect(await requestStatus(h, request)).toBe(Status.OK);
  });

  it('a domain outside domain_range is S_RANGE', async () => {
    const h = createVirtioIommuHarness({ endpoints, domainRange: { start: 0, end: 10 } });
    expect(await requestStatus(h, encodeDetach({ domain: 11, endpoint: 1 }))).toBe(Status.RANGE);
  });

  it('the endpoint loses access: back to bypass when bypass is set, faults otherwise', async () => {
    for (const bypass of [true, false]) {
      const h = createVirtioIommuHarness({ endpoints, bypass });
      expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
      expect(await requestStatus(h, map(1, 0x1000))).toBe(Status.OK);
      expect(await requestStatus(h, encodeDetach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
      const result = h.translate({ endpoint: 1, iova: 0x1000n, access: 'read' });
      expect(result.ok).toBe(bypass);
      if (result.ok) expect(result.address).toBe(0x1000n);
    }
  });

  it('MSI regions of endpoints keep their identity behaviour across attach', async () => {
    const h = createVirtioIommuHarness({ endpoints: [{ id: 5, reservedRegions: [msi] }], bypass: false });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 5 }))).toBe(Status.OK);
    expect(h.translate({ endpoint: 5, iova: 0xfee0_0040n, access: 'write' })).toEqual({
      ok: true,
      address: 0xfee0_0040n,
    });
  });
});
