import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFaultReport, encodeFaultReport } from './fault.js';
import { encodeProperties, type ProbeProperty, parseProperties, propertySize } from './properties.js';
import { decodeRequest } from './requests.js';

/** Parsers of guest-written bytes are total, and encoders round-trip through them. */

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const property: fc.Arbitrary<ProbeProperty> = fc.oneof(
  fc.record({
    type: fc.constant('resv-mem' as const),
    subtype: fc.integer({ min: 0, max: 255 }),
    start: u64,
    end: u64,
  }),
  fc.record({ type: fc.constant('page-size-mask' as const), mask: u64 }),
  fc.record({ type: fc.constant('input-range' as const), start: u64, end: u64 }),
  fc.record({
    type: fc.constantFrom('output-size' as const, 'pasid-size' as const),
    bits: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({
    type: fc.constantFrom('page-table-fmt' as const, 'pasid-table-fmt' as const),
    format: fc.integer({ min: 0, max: 0xffff }),
    asidBits: fc.integer({ min: 0, max: 0xffff }),
    flags: fc.nat({ max: 0xffff_ffff }),
  }),
);

describe('parsers of guest bytes', () => {
  it('decodeRequest, parseProperties and decodeFaultReport never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        decodeRequest(bytes);
        const parsed = parseProperties(bytes);
        // Every property consumed at least its 4-byte header.
        expect(parsed.length).toBeLessThanOrEqual(Math.floor(bytes.length / 4));
        decodeFaultReport(bytes);
      }),
      { numRuns: 1000 },
    );
  });

  it('properties round-trip, padded with zeros', () => {
    fc.assert(
      fc.property(fc.array(property, { maxLength: 8 }), fc.nat({ max: 64 }), (properties, slack) => {
        const size = properties.reduce((s, p) => s + propertySize(p), 0) + slack;
        const bytes = encodeProperties(properties, size);
        expect(parseProperties(bytes)).toEqual(properties.filter(() => true));
      }),
    );
  });

  it('fault reports round-trip', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.nat({ max: 0xffff_ffff }),
        fc.nat({ max: 0xffff_ffff }),
        fc.nat({ max: 0xffff_ffff }),
        u64,
        (reason, flags, endpoint, pasid, address) => {
          const report = decodeFaultReport(encodeFaultReport({ reason, flags, endpoint, pasid, address }))!;
          expect(report.reason).toBe(reason);
          expect(report.flags).toBe(flags);
          expect(report.endpoint).toBe(endpoint);
          expect(report.pasid).toBe(flags & 0x200 ? pasid : undefined);
          expect(report.address).toBe(flags & 0x100 ? address : undefined);
        },
      ),
    );
  });
});
