/**
 * SMMUv3 Stream Table Entry codec: 64 bytes, 8 little-endian dwords (IHI 0070 §5.2).
 *
 * Dwords 0 and 1 are split into the stage-1 fields (positions from Linux arm-smmu-v3.h
 * `STRTAB_STE_*`, cross-checked with QEMU smmuv3-common.h). Every other bit round-trips: the
 * reserved bits of dword 0, the dword-1 fields this model does not interpret (MemAttr, NSCFG,
 * PRIVCFG, INSTCFG …) and dwords 2–7 (stage 2, VMS, etc.) are kept as they are.
 */
import { ErrorCode, VmmError } from '@vmmkit/core';
import { getDword, getField, getFlag, readWords, setDword, setField, setFlag, writeWords } from './bits.js';

/** Size of one STE in bytes. */
export const STE_SIZE = 64;

/** STE.Config values (dword 0 [3:1]). */
export const SteConfig = {
  ABORT: 0b000,
  BYPASS: 0b100,
  S1_TRANSLATE: 0b101,
  S2_TRANSLATE: 0b110,
  NESTED: 0b111,
} as const;

/** STE.S1Fmt values: how the CD table at S1ContextPtr is laid out. */
export const SteS1Fmt = { LINEAR: 0, TWO_LEVEL_4K: 1, TWO_LEVEL_64K: 2 } as const;

/** STE.S1DSS values: what a transaction without a SubstreamID does when S1CDMax ≠ 0. */
export const SteS1Dss = { TERMINATE: 0, BYPASS: 1, SSID0: 2 } as const;

export interface SteFields {
  // dword 0
  /** V [0]. */
  valid: boolean;
  /** Config [3:1], see `SteConfig`. */
  config: number;
  /** S1Fmt [5:4], see `SteS1Fmt`. */
  s1fmt: number;
  /** S1ContextPtr [51:6]: CD, linear CD table or L1 CD table address (64-byte aligned). */
  s1ContextPtr: number;
  /**
   * Dword 0 bits [58:52] as a 7-bit number: [55:52] extend S1ContextPtr for 56-bit PAs (beyond
   * what a safe-integer address can hold; IHI 0070 §5.2), [58:56] are RES0. 0 when well formed.
   */
  dword0Res0: number;
  /** S1CDMax [63:59]: log2 of the number of CDs (0: one CD, no substreams). */
  s1cdmax: number;
  // dword 1
  /** S1DSS [1:0], see `SteS1Dss`. */
  s1dss: number;
  /** S1CIR [3:2]: inner cacheability of CD fetches. */
  s1cir: number;
  /** S1COR [5:4]: outer cacheability of CD fetches. */
  s1cor: number;
  /** S1CSH [7:6]: shareability of CD fetches. */
  s1csh: number;
  /** MEV [19]: merge events. */
  mev: boolean;
  /** S1STALLD [27]: stall disable. */
  s1stalld: boolean;
  /** EATS [29:28]: ATS behaviour. */
  eats: number;
  /** STRW [31:30]: StreamWorld (0 NS-EL1, 2 EL2). */
  strw: number;
  /** SHCFG [45:44]: shareability override. */
  shcfg: number;
  /** Every other bit of dword 1, in place (fields this codec does not name). */
  dword1Other: bigint;
  // dwords 2–7
  dword2: bigint;
  dword3: bigint;
  dword4: bigint;
  dword5: bigint;
  dword6: bigint;
  dword7: bigint;
}

/** The bits of dword 1 that `SteFields` names. */
export const STE_DW1_NAMED_MASK = 0x0000_3000_f808_00ffn;

/**
 * Encodes an STE into 64 bytes (into `out` when given). Missing fields are 0; a value that does
 * not fit its field throws `VmmError(ERANGE)` and leaves `out` untouched.
 */
export function encodeSte(fields: Partial<SteFields>, out?: Uint8Array): Uint8Array {
  const w = new Uint32Array(16);
  setFlag(w, 0, 0, fields.valid);
  setField(w, 0, 1, 3, fields.config ?? 0, 'config');
  setField(w, 0, 4, 2, fields.s1fmt ?? 0, 's1fmt');
  const ptr = fields.s1ContextPtr ?? 0;
  if (ptr % 64 !== 0) {
    throw new VmmError(ErrorCode.ERANGE, `s1ContextPtr = ${ptr} must be 64-byte aligned (field [51:6])`, {
      field: 's1ContextPtr',
    });
  }
  setField(w, 0, 6, 46, ptr / 64, 's1ContextPtr');
  setField(w, 0, 52, 7, fields.dword0Res0 ?? 0, 'dword0Res0');
  setField(w, 0, 59, 5, fields.s1cdmax ?? 0, 's1cdmax');
  const other = fields.dword1Other ?? 0n;
  if ((other & STE_DW1_NAMED_MASK) !== 0n) {
    throw new VmmError(ErrorCode.ERANGE, 'dword1Other overlaps the named dword-1 fields; set those by name', {
      field: 'dword1Other',
    });
  }
  setDword(w, 1, other, 'dword1Other');
  setField(w, 1, 0, 2, fields.s1dss ?? 0, 's1dss');
  setField(w, 1, 2, 2, fields.s1cir ?? 0, 's1cir');
  setField(w, 1, 4, 2, fields.s1cor ?? 0, 's1cor');
  setField(w, 1, 6, 2, fields.s1csh ?? 0, 's1csh');
  setFlag(w, 1, 19, fields.mev);
  setFlag(w, 1, 27, fields.s1stalld);
  setField(w, 1, 28, 2, fields.eats ?? 0, 'eats');
  setField(w, 1, 30, 2, fields.strw ?? 0, 'strw');
  setField(w, 1, 44, 2, fields.shcfg ?? 0, 'shcfg');
  setDword(w, 2, fields.dword2 ?? 0n, 'dword2');
  setDword(w, 3, fields.dword3 ?? 0n, 'dword3');
  setDword(w, 4, fields.dword4 ?? 0n, 'dword4');
  setDword(w, 5, fields.dword5 ?? 0n, 'dword5');
  setDword(w, 6, fields.dword6 ?? 0n, 'dword6');
  setDword(w, 7, fields.dword7 ?? 0n, 'dword7');
  return writeWords(w, out, 'a stream table entry');
}

/** Decodes the 64-byte STE at `bytes[offset..]`; every bit lands in exactly one field. */
export function decodeSte(bytes: Uint8Array, offset = 0): SteFields {
  const w = readWords(bytes, 8, offset, 'a stream table entry');
  return {
    valid: getFlag(w, 0, 0),
    config: getField(w, 0, 1, 3),
    s1fmt: getField(w, 0, 4, 2),
    s1ContextPtr: getField(w, 0, 6, 46) * 64,
    dword0Res0: getField(w, 0, 52, 7),
    s1cdmax: getField(w, 0, 59, 5),
    s1dss: getField(w, 1, 0, 2),
    s1cir: getField(w, 1, 2, 2),
    s1cor: getField(w, 1, 4, 2),
    s1csh: getField(w, 1, 6, 2),
    mev: getFlag(w, 1, 19),
    s1stalld: getFlag(w, 1, 27),
    eats: getField(w, 1, 28, 2),
    strw: getField(w, 1, 30, 2),
    shcfg: getField(w, 1, 44, 2),
    dword1Other: getDword(w, 1) & ~STE_DW1_NAMED_MASK,
    dword2: getDword(w, 2),
    dword3: getDword(w, 3),
    dword4: getDword(w, 4),
    dword5: getDword(w, 5),
    dword6: getDword(w, 6),
    dword7: getDword(w, 7),
  };
}
