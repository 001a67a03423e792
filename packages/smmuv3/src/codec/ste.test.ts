import { isVmmError } from '@vmmkit/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeL1CdDesc, decodeL1StreamDesc, encodeL1CdDesc, encodeL1StreamDesc } from './l1.js';
import { decodeSte, encodeSte, SteConfig, SteS1Dss, SteS1Fmt } from './ste.js';

function dword(bytes: Uint8Array, index: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(index * 8, true);
}

describe('encodeSte / decodeSte', () => {
  // Linux arm_smmu_make_cdtable_ste: V, CFG=S1, S1CIR=S1COR=WBRA, S1CSH=ISH (reference §1.4).
  const linuxS1 = { valid: true, config: SteConfig.S1_TRANSLATE, s1cir: 1, s1cor: 1, s1csh: 3 };

  it('single CD at 0x4000_0000, S1DSS=SSID0 (reference §1.4)', () => {
    const bytes = encodeSte({ ...linuxS1, s1ContextPtr: 0x4000_0000, s1dss: SteS1Dss.SSID0 });
    expect(dword(bytes, 0)).toBe(0x000000004000000bn);
    expect(dword(bytes, 1)).toBe(0x00000000000000d6n);
  });

  it('two-level CD table, S1CDMax 20 (reference §1.4)', () => {
    const bytes = encodeSte({
      ...linuxS1,
      s1fmt: SteS1Fmt.TWO_LEVEL_64K,
      s1cdmax: 20,
      s1ContextPtr: 0x4000_0000,
      s1dss: SteS1Dss.SSID0,
    });
    expect(dword(bytes, 0)).toBe(0xa00000004000002bn);
    expect(dword(bytes, 1)).toBe(0x00000000000000d6n);
  });

  it.each([
    [SteS1Dss.SSID0, 0, 0x00000000180000d6n],
    [SteS1Dss.BYPASS, 1, 0x00001000180000d5n],
  ])('Linux KUnit arm_smmu_test_make_cdtable_ste, S1DSS %i', (s1dss, shcfg, dw1) => {
    // cdtab 0xF0F0F0F0F0F0 masked to [51:6]; s1cdmax 0xFF masked to 5 bits; ATS; STALLS feature.
    const bytes = encodeSte({
      ...linuxS1,
      s1fmt: SteS1Fmt.TWO_LEVEL_64K,
      s1cdmax: 0xff & 0x1f,
      s1ContextPtr: 0xf0f0f0f0f0f0 - (0xf0f0f0f0f0f0 % 64),
      s1dss,
      eats: 1,
      s1stalld: true,
      shcfg,
    });
    expect(dword(bytes, 0)).toBe(0xf800f0f0f0f0f0ebn);
    expect(dword(bytes, 1)).toBe(dw1);
    expect(decodeSte(bytes)).toMatchObject({ s1cdmax: 31, s1fmt: 2, eats: 1, s1stalld: true, s1dss, shcfg });
  });

  it('QEMU qtest STE (reference §7.4) decodes', () => {
    const bytes = new Uint8Array(64);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, 0x000000004e178fcbn, true);
    view.setBigUint64(16, 0x000d009400000000n, true);
    expect(decodeSte(bytes)).toMatchObject({
      valid: true,
      config: 5,
      s1ContextPtr: 0x4e178fc0,
      s1cdmax: 0,
      dword2: 0x000d009400000000n,
    });
  });

  it('every 512-bit pattern survives decode then encode', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), (bytes) => {
        expect(encodeSte(decodeSte(bytes))).toEqual(bytes);
      }),
    );
  });

  it('refuses out-of-range fields', () => {
    for (const bad of [{ config: 8 }, { s1ContextPtr: 0x1020 }, { s1cdmax: 32 }, { dword1Other: 1n }]) {
      let error: unknown;
      try {
        encodeSte(bad);
      } catch (e) {
        error = e;
      }
      expect(isVmmError(error, 'ERANGE')).toBe(true);
    }
  });
});

describe('L1 descriptors', () => {
  it('L1STD: Span and L2Ptr', () => {
    const bytes = encodeL1StreamDesc({ span: 9, l2ptr: 0x8000_1040 });
    expect(dword(bytes, 0)).toBe(0x8000_1049n);
    expect(decodeL1StreamDesc(bytes)).toEqual({ span: 9, l2ptr: 0x8000_1040, res0: 0n });
  });

  it('L1CD: V and L2Ptr [51:12]', () => {
    const bytes = encodeL1CdDesc({ valid: true, l2ptr: 0x000f_ffff_ffff_f000 });
    expect(dword(bytes, 0)).toBe(0x000f_ffff_ffff_f001n);
    expect(decodeL1CdDesc(bytes)).toEqual({ valid: true, l2ptr: 0x000f_ffff_ffff_f000, res0: 0n });
    expect(() => encodeL1CdDesc({ valid: true, l2ptr: 0x1040 })).toThrow(/aligned/);
  });

  it('every 64-bit pattern round-trips', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), (bytes) => {
        expect(encodeL1StreamDesc(decodeL1StreamDesc(bytes))).toEqual(bytes);
        expect(encodeL1CdDesc(decodeL1CdDesc(bytes))).toEqual(bytes);
      }),
    );
  });
});
