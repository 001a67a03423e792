import { isVmmError } from '@vmmkit/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MapFlag, Status } from '../protocol/constants.js';
import { encodeAttach, encodeMap, encodeUnmap } from '../protocol/requests.js';
import { createVirtioIommuHarness } from './harness.js';
import { requestStatus } from './status.js';

/** The harness itself: batches larger than the queue, statuses in order, unanswered requests. */

describe('createVirtioIommuHarness', () => {
  it('submitBatch answers each request in order, across several queue-fulls', async () => {
    const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], queueSize: 16 });
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    const requests: Uint8Array[] = [];
    const expected: number[] = [];
    for (let i = 0; i < 50; i++) {
      const virtStart = (i % 20) * 0x1000;
      requests.push(
        encodeMap({ domain: 1, virtStart, virtEnd: virtStart + 0xfff, physStart: 0, flags: MapFlag.READ }),
      );
      // The first 20 MAPs succeed, the next 30 overlap them.
      expected.push(i < 20 ? Status.OK : Status.INVAL);
    }
    requests.push(Uint8Array.of(0x42, 0, 0, 0));
    expected.push(0xff);
    requests.push(encodeUnmap({ domain: 1, virtStart: 0, virtEnd: 0xf_ffff }));
    expected.push(Status.OK);
    expect(Array.from(h.submitBatch(requests))).toEqual(expected);
    expect(h.device.mappingCount).toBe(0);
  });

  it('restart() negotiates again after a reset, with fresh queues', async () => {
    const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }] });
    const first = h.guest.requestQueue;
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    h.restart();
    expect(h.guest.requestQueue).not.toBe(first);
    expect(h.device.domains()).toEqual([]);
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 1 }))).toBe(Status.OK);
    expect(h.device.endpointDomain(1)).toBe(2);
  });

  it('translate() (the page path) answers exactly as device.translate does, faults included', async () => {
    const h = createVirtioIommuHarness({
      endpoints: [
        { id: 1 },
        { id: 2, reservedRegions: [{ start: 0x8000n, end: 0x8fffn, subtype: 'msi' }] },
        { id: 3 },
      ],
      bypass: false,
    });
    const top = (1n << 64n) - 0x2000n;
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 1 }))).toBe(Status.OK);
    expect(await requestStatus(h, encodeAttach({ domain: 2, endpoint: 2 }))).toBe(Status.OK);
    for (const [domain, virtStart, flags] of [
      [1, 0x1000n, MapFlag.READ],
      [1, 0x3000n, MapFlag.READ | MapFlag.WRITE],
      [1, top, MapFlag.WRITE],
      [2, 0x1_0000_0000n, MapFlag.READ | MapFlag.WRITE],
    ] as const) {
      const map = encodeMap({
        domain,
        virtStart,
        virtEnd: virtStart + 0x1fffn,
        physStart: 0x4000_0000n,
        flags,
      });
      expect(await requestStatus(h, map)).toBe(Status.OK);
    }
    const iovas = [0n, 0x1000n, 0x2fffn, 0x3000n, 0x4abcn, 0x8000n, 0x1_0000_0000n, top, top + 0x1fffn];
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 3, 9),
        fc.oneof(fc.constantFrom(...iovas), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
        fc.constantFrom('read' as const, 'write' as const),
        fc.option(fc.constantFrom(0, 5), { nil: undefined, freq: 4 }),
        (endpoint, iova, access, pasid) => {
          const fast = h.translate({ endpoint, iova, access, pasid });
          const slow = h.device.translate({ endpoint, iova, access, pasid, length: 1 });
          const expected = slow.ok
            ? { ok: true, address: slow.segments[0]!.address }
            : { ok: false, fault: slow.fault };
          expect(fast).toEqual(expected);
        },
      ),
      { numRuns: 500 },
    );
    // Both paths reported every fault on the event queue.
    expect(h.device.faultStats.raised % 2).toBe(0);
    // Malformed arguments still get device.translate's VmmError.
    expect(() => h.translate({ endpoint: -1, iova: 0n, access: 'read' })).toThrow(/endpoint/);
    expect(() => h.translate({ endpoint: 1, iova: 1n << 64n, access: 'read' })).toThrow(/iova/);
    expect(() => h.translate({ endpoint: 1, iova: 0n, access: 'fetch' as 'read' })).toThrow(/access/);
  });

  it('driver is the guest driver model on the same device; it owns the queues until restart()', async () => {
    const h = createVirtioIommuHarness({
      endpoints: [{ id: 8, reservedRegions: [{ start: 0xfee0_0000n, end: 0xfeef_ffffn, subtype: 'msi' }] }],
      bypass: false,
    });
    const { driver } = h;
    expect(h.driver).toBe(driver);
    // The driver negotiated for itself and PROBEd through the device's request queue.
    expect(driver.features.attachTable).toBe(true);
    const domain = driver.createDomain();
    driver.attach(8, domain);
    expect(driver.probeEndpoint(8).probe.reservedRegions).toHaveLength(1);
    driver.map(domain, 0x10_0000, 0x4020_0000, 0x1000, { read: true });
    expect(h.translate({ endpoint: 8, iova: 0x10_0123n, access: 'read' })).toEqual({
      ok: true,
      address: 0x4020_0123n,
    });
    const faults: number[] = [];
    driver.on('fault', (f) => faults.push(f.endpoint));
    expect(h.translate({ endpoint: 8, iova: 0x10_0000n, access: 'write' }).ok).toBe(false);
    driver.handleInterrupt();
    expect(faults).toEqual([8]);
    // The harness's own queues were replaced by the driver's: using them is refused, not wrong.
    const refused = await h.submit(encodeAttach({ domain: 1, endpoint: 8 }), 4).catch((e: unknown) => e);
    expect(isVmmError(refused) && refused.code).toBe('EBUSY');
    expect(() => h.events()).toThrow(/owns the device queues/);
    h.restart();
    expect(h.device.domains()).toEqual([]);
    expect(await requestStatus(h, encodeAttach({ domain: 1, endpoint: 8 }))).toBe(Status.OK);
    // A fresh driver model after a restart.
    expect(h.driver).not.toBe(driver);
  });
});
