import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MapFlag, Status } from '../protocol/constants.js';
import { encodeAttach, encodeMap, encodeUnmap } from '../protocol/requests.js';
import { createVirtioIommuHarness, ReferenceMappings, requestStatus } from '../testing/index.js';

/**
 * Random MAP/UNMAP sequences agree with a plain reference model: an array of inclusive
 * intervals, with the spec's rules written the obvious way (virtio 1.2 §5.13.6.5-6). The
 * address space is placed at bases that exercise both 32-bit halves and the top of 2^64.
 */

const PAGE = 0x1000n;
const bases = [0n, (1n << 32n) - 16n * PAGE, 1n << 52n, 1n << 63n, (1n << 64n) - 64n * PAGE];
const op = fc.oneof(
  fc.record({
    kind: fc.constant('map' as const),
    first: fc.nat({ max: 63 }),
    pages: fc.integer({ min: 0, max: 8 }),
    phys: fc.nat({ max: 0xfff }),
  }),
  fc.record({
    kind: fc.constant('unmap' as const),
    first: fc.nat({ max: 63 }),
    pages: fc.integer({ min: -1, max: 20 }),
  }),
);

describe('mapping store against a reference model', () => {
  it('statuses and translations agree', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...bases),
        fc.array(op, { minLength: 1, maxLength: 60 }),
        async (base, ops) => {
          const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], bypass: false });
          expect(await requestStatus(h, encodeAttach({ domain: 7, endpoint: 1 }))).toBe(Status.OK);
          const model = new ReferenceMappings();
          for (const o of ops) {
            const start = base + BigInt(o.first) * PAGE;
            const last = start + BigInt(o.pages) * PAGE - 1n;
            const end = last > (1n << 64n) - 1n ? (1n << 64n) - 1n : last;
            if (o.kind === 'map') {
              const phys = BigInt(o.phys) * PAGE;
              const expected = model.map(start, end, phys, MapFlag.READ);
              const got = await requestStatus(
                h,
                encodeMap({
                  domain: 7,
                  virtStart: start,
                  virtEnd: end < 0n ? 0n : end,
                  physStart: phys,
                  flags: MapFlag.READ,
                }),
              );
              expect(got).toBe(end < 0n ? Status.RANGE : expected);
            } else {
              if (end < 0n) continue;
              expect(await requestStatus(h, encodeUnmap({ domain: 7, virtStart: start, virtEnd: end }))).toBe(
                model.unmap(start, end),
              );
            }
          }
          expect(h.device.mappingCount).toBe(model.intervals.length);
          for (let page = 0n; page < 72n; page++) {
            const iova = base + page * PAGE + 0x123n;
            if (iova > (1n << 64n) - 1n) break;
            const expected = model.lookup(iova);
            const got = h.translate({ endpoint: 1, iova, access: 'read' });
            expect(got.ok ? got.address : null).toBe(expected);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
