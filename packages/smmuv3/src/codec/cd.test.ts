import { isVmmError } from '@vmmkit/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CD_SIZE, decodeCd, encodeCd } from './cd.js';

function dwords(bytes: Uint8Array): bigint[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  return Array.from({ length: bytes.length / 8 }, (_, i) => view.getBigUint64(i * 8, true));
}

function fromDwords(values: bigint[]): Uint8Array {
  const bytes = new Uint8Array(values.length * 8);
  const view = new DataView(bytes.buffer);
  for (const [i, v] of values.entries()) view.setBigUint64(i * 8, v, true);
  return bytes;
}

describe('encodeCd / decodeCd golden vectors', () => {
  it('Linux stage-1 CD for a 48-bit 4K domain, ASID 1 (reference §2.6 example A)', () => {
    const bytes = encodeCd({
      t0sz: 16,
      tg0: 0,
      irgn0: 1,
      orgn0: 1,
      sh0: 3,
      epd1: true,
      valid: true,
      ips: 5,
      aa64: true,
      r: true,
      a: true,
      aset: true,
      asid: 1,
      ttb0: 0x8000_0000,
      mair: 0xf404ff44n,
    });
    expect(bytes.length).toBe(CD_SIZE);
    expect(dwords(bytes)).toEqual([0x0001e205c0003510n, 0x80000000n, 0n, 0xf404ff44n, 0n, 0n, 0n, 0n]);
  });

  it.each([
    [778, 0x030ae201c0003684n],
    [1997, 0x07cde201c0003684n],
  ])('Linux KUnit arm_smmu_test_make_s1_cd, ASID %i (reference §2.6 example B)', (asid, dw0) => {
    const bytes = encodeCd({
      t0sz: 4,
      tg0: 2,
      irgn0: 2,
      orgn0: 1,
      sh0: 3,
      epd1: true,
      valid: true,
      ips: 1,
      aa64: true,
      r: true,
      a: true,
      aset: true,
      asid,
      // The driver masks the TTBR with [51:4].
      ttb0: Number(0xdaedbeefdeadbeefn & 0x000f_ffff_ffff_fff0n),
      mair: 0x0abcdef012345678n,
    });
    expect(dwords(bytes)).toEqual([dw0, 0x000dbeefdeadbee0n, 0n, 0x0abcdef012345678n, 0n, 0n, 0n, 0n]);
  });

  it('QEMU qtest CD decodes to its fields (reference §2.6 example C)', () => {
    const bytes = fromDwords([0x1e206204c0000010n, 0x4e4d0001n, 0x1n, 0n, 0n, 0n, 0n, 0n]);
    const cd = decodeCd(bytes);
    expect(cd).toMatchObject({
      asid: 0x1e20,
      aa64: true,
      valid: true,
      a: true,
      r: true,
      s: false,
      ha: false,
      hd: false,
      ips: 4,
      tbi0: false,
      tbi1: false,
      affd: false,
      epd0: false,
      epd1: true,
      t0sz: 0x10,
      tg0: 0,
      endi: false,
      nscfg0: true,
      nscfg1: true,
      ttb0: 0x4e4d0000,
      ttb1: 0,
      irgn0: 0,
      orgn0: 0,
      sh0: 0,
      aset: false,
      mair: 0n,
    });
    expect(encodeCd(cd)).toEqual(bytes);
  });
});

describe('encodeCd / decodeCd round trips', () => {
  it('every 512-bit pattern survives decode then encode', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), (bytes) => {
        expect(encodeCd(decodeCd(bytes))).toEqual(bytes);
      }),
    );
  });

  it('each field lands in its own bits: decode(encode(fields)) === fields', () => {
    const two = fc.integer({ min: 0, max: 3 });
    const arb = fc.record({
      t0sz: fc.integer({ min: 0, max: 63 }),
      tg0: two,
      irgn0: two,
      orgn0: two,
      sh0: two,
      epd0: fc.boolean(),
      endi: fc.boolean(),
      t1sz: fc.integer({ min: 0, max: 63 }),
      tg1: two,
      epd1: fc.boolean(),
      valid: fc.boolean(),
      ips: fc.integer({ min: 0, max: 7 }),
      affd: fc.boolean(),
      tbi1: fc.boolean(),
      ha: fc.boolean(),
      asid: fc.integer({ min: 0, max: 0xffff }),
      had0: fc.boolean(),
      ttb0: fc.integer({ min: 0, max: 2 ** 48 - 1 }).map((v) => v * 16),
      ttb1: fc.integer({ min: 0, max: 2 ** 48 - 1 }).map((v) => v * 16),
      mair: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    });
    fc.assert(
      fc.property(arb, (fields) => {
        expect(decodeCd(encodeCd(fields))).toMatchObject(fields);
      }),
    );
  });

  it('decodes at an offset inside a larger table', () => {
    const table = new Uint8Array(3 * CD_SIZE);
    encodeCd({ valid: true, asid: 7, ttb0: 0x1234_5670 }, table.subarray(CD_SIZE));
    expect(decodeCd(table, CD_SIZE)).toMatchObject({ valid: true, asid: 7, ttb0: 0x1234_5670 });
    expect(decodeCd(table, 0).valid).toBe(false);
  });

  it('refuses values that do not fit, without touching the output', () => {
    const out = new Uint8Array(64).fill(0xaa);
    for (const bad of [
      { asid: 0x1_0000 },
      { t0sz: 64 },
      { ttb0: 0x1008 + 2 },
      { ttb0: 2 ** 52 },
      { tg0: -1 },
    ]) {
      let error: unknown;
      try {
        encodeCd(bad, out);
      } catch (e) {
        error = e;
      }
      expect(isVmmError(error, 'ERANGE')).toBe(true);
    }
    expect(out.every((b) => b === 0xaa)).toBe(true);
    expect(() => decodeCd(new Uint8Array(63))).toThrow(/64 bytes/);
  });
});
