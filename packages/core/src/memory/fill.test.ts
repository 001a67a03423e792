import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fillBytes } from './fill.js';

describe('fillBytes', () => {
  it('writes exactly what Uint8Array.fill writes, on shared and ordinary buffers (property)', () => {
    const size = 0x3_0000; // past two pattern lengths
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.integer({ min: 0, max: size }),
        fc.integer({ min: 0, max: size }),
        fc.oneof(fc.integer({ min: 0, max: 255 }), fc.integer({ min: -1000, max: 1000 })),
        (shared, a, b, value) => {
          const [start, end] = a <= b ? [a, b] : [b, a];
          const make = () =>
            new Uint8Array(shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size)).fill(0x5c);
          const actual = make();
          const expected = make();
          fillBytes(actual, value, start, end);
          expected.fill(value, start, end);
          expect(Buffer.compare(Buffer.from(actual.buffer), Buffer.from(expected.buffer))).toBe(0);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('switches patterns between values without mixing them', () => {
    const bytes = new Uint8Array(new SharedArrayBuffer(0x2_0000));
    fillBytes(bytes, 0xaa, 0, 0x2_0000);
    fillBytes(bytes, 0x11, 0x100, 0x1_8000);
    fillBytes(bytes, 0xaa, 0x1_0000, 0x1_0100);
    expect(bytes[0xff]).toBe(0xaa);
    expect(bytes[0x100]).toBe(0x11);
    expect(bytes[0xffff]).toBe(0x11);
    expect(bytes[0x1_0000]).toBe(0xaa);
    expect(bytes[0x1_0100]).toBe(0x11);
    expect(bytes[0x1_8000]).toBe(0xaa);
  });
});
