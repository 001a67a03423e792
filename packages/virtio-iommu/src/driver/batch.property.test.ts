/**
 * Batching must not change meaning: a random sequence of MAP/UNMAP sent as one batch gets the
 * statuses it gets one request at a time, and leaves the same translations (real device).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createVirtioIommuHarness } from '../testing/index.js';
import { VirtioIommuDriver } from './driver.js';

const RAM = 0x4000_0000;
const PAGES = 16;

type Op =
  | { kind: 'map'; page: number; pages: number; target: number; flags: number }
  | { kind: 'unmap'; page: number; pages: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('map' as const),
    page: fc.integer({ min: 0, max: PAGES - 1 }),
    pages: fc.integer({ min: 1, max: 4 }),
    target: fc.integer({ min: 0, max: 64 }),
    flags: fc.integer({ min: 1, max: 3 }),
  }),
  fc.record({
    kind: fc.constant('unmap' as const),
    page: fc.integer({ min: 0, max: PAGES - 1 }),
    pages: fc.integer({ min: 1, max: 6 }),
  }),
);

function driverOn(harness: ReturnType<typeof createVirtioIommuHarness>) {
  const { mmio, base, memory, allocator } = harness.guest;
  const driver = new VirtioIommuDriver({
    mmio,
    base,
    memory,
    allocator,
    requestQueueSize: 16,
    eventQueueSize: 4,
  });
  const domain = driver.createDomain();
  driver.attach(1, domain);
  return { driver, domain };
}

function queue(batch: ReturnType<VirtioIommuDriver['batch']>, domain: number, op: Op): void {
  // High IOVAs, so the BigInt path of the batch is exercised too.
  const iova = 0xffff_ff00_0000_0000n + BigInt(op.page * 0x1000);
  if (op.kind === 'map') batch.map(domain, iova, RAM + op.target * 0x1000, op.pages * 0x1000, op.flags);
  else batch.unmap(domain, iova, op.pages * 0x1000);
}

describe('batched requests', () => {
  it('answer as they do one at a time, across queue-full splits', () => {
    let refused = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 30 }), (ops) => {
        const batched = createVirtioIommuHarness({
          endpoints: [{ id: 1 }],
          bypass: false,
          memorySize: 1 << 20,
        });
        const single = createVirtioIommuHarness({
          endpoints: [{ id: 1 }],
          bypass: false,
          memorySize: 1 << 20,
        });
        const a = driverOn(batched);
        const b = driverOn(single);
        const batch = a.driver.batch();
        for (const op of ops) queue(batch, a.domain, op);
        const result = batch.submit();
        const one = ops.map((op) => {
          const bb = b.driver.batch(1);
          queue(bb, b.domain, op);
          return bb.submit().status(0);
        });
        expect(Array.from({ length: ops.length }, (_, i) => result.status(i))).toEqual(one);
        refused += result.failures.length;
        for (let page = 0; page < PAGES + 4; page++) {
          const iova = 0xffff_ff00_0000_0000n + BigInt(page * 0x1000);
          const ta = batched.translate({ endpoint: 1, iova, access: 'read' });
          const tb = single.translate({ endpoint: 1, iova, access: 'read' });
          expect(ta.ok ? ta.address : null).toBe(tb.ok ? tb.address : null);
        }
      }),
      { numRuns: 60 },
    );
    // The sequences do overlap and split mappings: refused requests occur, so order matters.
    expect(refused).toBeGreaterThan(0);
  });
});
