import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeProperties, type ProbeProperty } from '../protocol/properties.js';
import { U64_MAX } from '../protocol/u64.js';
import { bitsToCover, describeTableFormats, parseProbeProperties } from './probe-parser.js';

const defaults = { pageSizeMask: 0xffff_ffff_ffff_f000n, inputRange: { start: 0n, end: U64_MAX } };

/** A property header with an arbitrary raw type word and length, then `value`. */
function raw(typeWord: number, value: number[], length = value.length): number[] {
  return [typeWord & 0xff, typeWord >> 8, length & 0xff, length >> 8, ...value];
}

function le64(v: bigint): number[] {
  return Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
}

describe('PROBE properties', () => {
  it('reads reserved regions, sorts them, treats unknown subtypes as RESERVED', () => {
    const props: ProbeProperty[] = [
      { type: 'resv-mem', subtype: 1, start: 0xfee0_0000n, end: 0xfeef_ffffn },
      { type: 'resv-mem', subtype: 7, start: 0x1000n, end: 0x1fffn },
      { type: 'resv-mem', subtype: 0, start: 0xffff_ffff_ffff_0000n, end: U64_MAX },
    ];
    const probe = parseProbeProperties(encodeProperties(props, 128));
    expect(probe.reservedRegions).toEqual([
      { start: 0x1000n, end: 0x1fffn, subtype: 'reserved', rawSubtype: 7 },
      { start: 0xfee0_0000n, end: 0xfeef_ffffn, subtype: 'msi', rawSubtype: 1 },
      { start: 0xffff_ffff_ffff_0000n, end: U64_MAX, subtype: 'reserved', rawSubtype: 0 },
    ]);
    expect(probe.skipped).toEqual([]);
  });

  it('rejects regions whose end is below their start or whose size overflows 64 bits', () => {
    const probe = parseProbeProperties(
      encodeProperties(
        [
          { type: 'resv-mem', subtype: 0, start: 0x2000n, end: 0x1fffn },
          { type: 'resv-mem', subtype: 0, start: 0n, end: U64_MAX },
          { type: 'resv-mem', subtype: 1, start: 0x8000_0000n, end: 0x8000_0fffn },
        ],
        128,
      ),
    );
    expect(probe.reservedRegions).toHaveLength(1);
    expect(probe.reservedRegions[0]!.start).toBe(0x8000_0000n);
    expect(probe.skipped.map((s) => s.reason)).toEqual([
      expect.stringContaining('above end'),
      expect.stringContaining('overflows'),
    ]);
  });

  it('ignores a property whose reserved type bits are set, an unknown type and a short one, and goes on', () => {
    const bytes = new Uint8Array([
      // RESV_MEM with reserved bit 12 set: must be ignored.
      ...raw(0x1001, [0, 0, 0, 0, ...le64(0x1000n), ...le64(0x1fffn)]),
      // Unknown type 0x123 with 4 value bytes.
      ...raw(0x123, [1, 2, 3, 4]),
      // OUTPUT_SIZE too short (length 2 instead of 4).
      ...raw(4, [48, 0]),
      // PASID_SIZE, valid.
      ...raw(5, [16, 0, 0, 0]),
      // NONE ends the list: what follows is not read.
      ...raw(0, []),
      ...raw(5, [8, 0, 0, 0]),
    ]);
    const probe = parseProbeProperties(bytes);
    expect(probe.reservedRegions).toEqual([]);
    expect(probe.outputBits).toBeUndefined();
    expect(probe.pasidBits).toBe(16);
  });

  it('stops at a property that runs past probe_size', () => {
    const bytes = new Uint8Array([...raw(5, [12, 0, 0, 0]), ...raw(4, [48, 0, 0, 0], 200)]);
    const probe = parseProbeProperties(bytes);
    expect(probe.pasidBits).toBe(12);
    expect(probe.outputBits).toBeUndefined();
  });

  it('describes each table format offered with its geometry', () => {
    const probe = parseProbeProperties(
      encodeProperties(
        [
          { type: 'page-size-mask', mask: 0x4020_1000n },
          { type: 'input-range', start: 0n, end: (1n << 48n) - 1n },
          { type: 'output-size', bits: 44 },
          { type: 'pasid-size', bits: 10 },
          { type: 'pasid-table-fmt', format: 2, asidBits: 16, flags: 0b010 },
          { type: 'page-table-fmt', format: 1, asidBits: 16, flags: 0 },
          { type: 'page-table-fmt', format: 1, asidBits: 8, flags: 0 },
        ],
        256,
      ),
    );
    expect(describeTableFormats(probe, defaults)).toEqual([
      {
        format: 2,
        kind: 'pasid-table',
        asidBits: 16,
        flags: 0b010,
        outputBits: 44,
        pasidBits: 10,
        pageSizeMask: 0x4020_1000n,
        inputBits: 48,
      },
      {
        format: 1,
        kind: 'page-table',
        asidBits: 16,
        flags: 0,
        outputBits: 44,
        pasidBits: 0,
        pageSizeMask: 0x4020_1000n,
        inputBits: 48,
      },
    ]);
    expect(probe.skipped).toEqual([{ type: 'page-table-fmt', reason: expect.stringContaining('duplicate') }]);
  });

  it('gives each format the geometry of its group, inheriting what a group leaves out', () => {
    const probe = parseProbeProperties(
      encodeProperties(
        [
          { type: 'page-size-mask', mask: 0x4020_1000n },
          { type: 'input-range', start: 0n, end: (1n << 48n) - 1n },
          { type: 'output-size', bits: 48 },
          { type: 'pasid-size', bits: 20 },
          { type: 'pasid-table-fmt', format: 2, asidBits: 16, flags: 0 },
          { type: 'page-size-mask', mask: 0x1_0000n },
          { type: 'output-size', bits: 40 },
          { type: 'page-table-fmt', format: 1, asidBits: 8, flags: 0 },
        ],
        256,
      ),
    );
    expect(
      describeTableFormats(probe, defaults).map((f) => [
        f.format,
        f.pageSizeMask,
        f.outputBits,
        f.inputBits,
        f.pasidBits,
      ]),
    ).toEqual([
      [2, 0x4020_1000n, 48, 48, 20],
      [1, 0x1_0000n, 40, 48, 0],
    ]);
    // The endpoint-wide view keeps the first value reported.
    expect([probe.pageSizeMask, probe.outputBits]).toEqual([0x4020_1000n, 48]);
  });

  it('falls back to the device geometry, and offers nothing without OUTPUT_SIZE', () => {
    const withOutput = parseProbeProperties(
      encodeProperties(
        [
          { type: 'output-size', bits: 48 },
          { type: 'page-table-fmt', format: 1, asidBits: 16, flags: 0 },
          { type: 'pasid-table-fmt', format: 2, asidBits: 16, flags: 0 },
        ],
        64,
      ),
    );
    const formats = describeTableFormats(withOutput, {
      pageSizeMask: 0x1000n,
      inputRange: { start: 0n, end: 0xff_ffff_ffffn },
    });
    // The PASID table needs PASID_SIZE, so only the page table is offered.
    expect(formats).toEqual([expect.objectContaining({ format: 1, pageSizeMask: 0x1000n, inputBits: 40 })]);
    const without = parseProbeProperties(
      encodeProperties([{ type: 'page-table-fmt', format: 1, asidBits: 16, flags: 0 }], 32),
    );
    expect(describeTableFormats(without, defaults)).toEqual([]);
  });

  it('computes input bits as log2(end) + 1', () => {
    expect(bitsToCover((1n << 48n) - 1n)).toBe(48);
    expect(bitsToCover(U64_MAX)).toBe(64);
    expect(bitsToCover(0x1000n)).toBe(13);
  });

  it('never throws on arbitrary bytes, and everything it keeps is well-formed', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const probe = parseProbeProperties(bytes);
        for (let i = 1; i < probe.reservedRegions.length; i++) {
          expect(probe.reservedRegions[i - 1]!.start <= probe.reservedRegions[i]!.start).toBe(true);
        }
        for (const r of probe.reservedRegions) {
          expect(r.start <= r.end).toBe(true);
          expect(r.end - r.start + 1n <= U64_MAX).toBe(true);
        }
        if (probe.pasidBits !== undefined) expect(probe.pasidBits).toBeLessThanOrEqual(20);
        if (probe.outputBits !== undefined) expect(probe.outputBits).toBeGreaterThan(0);
        expect(() => describeTableFormats(probe, defaults)).not.toThrow();
      }),
      { numRuns: 500 },
    );
  });

  it('skips properties with arbitrary reserved type bits or unknown types among valid ones', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            reservedBits: fc.integer({ min: 1, max: 15 }),
            type: fc.integer({ min: 8, max: 0xfff }),
            value: fc.uint8Array({ maxLength: 24 }),
          }),
          { maxLength: 6 },
        ),
        (junk) => {
          const bytes: number[] = [...raw(5, [9, 0, 0, 0])];
          for (const j of junk) {
            bytes.push(...raw((j.reservedBits << 12) | 1, [...j.value]));
            bytes.push(...raw(j.type, [...j.value]));
          }
          bytes.push(...raw(4, [40, 0, 0, 0]));
          const probe = parseProbeProperties(new Uint8Array(bytes));
          expect(probe.pasidBits).toBe(9);
          expect(probe.outputBits).toBe(40);
          expect(probe.reservedRegions).toEqual([]);
        },
      ),
      { numRuns: 200 },
    );
  });
});
