/**
 * SMMUv3 Context Descriptor (CD) codec: 64 bytes, 8 little-endian dwords (IHI 0070 §5.4).
 *
 * Bit positions follow Linux arm-smmu-v3.h (`CTXDESC_CD_*`) and QEMU hw/arm/smmuv3-common.h
 * (`CD_0..CD_5`). Every bit of the 512 round-trips: dwords 0–3 are split into named fields,
 * the bits the architecture leaves reserved in dwords 1/2 are kept in `ttb0Res0`/`ttb1Res0`,
 * and dwords 4–7 (AMAIR, IMPLEMENTATION DEFINED, MPAM, VMSPtr) are kept whole.
 */
import { ErrorCode, VmmError } from '@vmmkit/core';
import { fieldRangeError, getDword, getField, getFlag, readWords, setDword, writeWords } from './bits.js';

/** Size of one CD in bytes. */
export const CD_SIZE = 64;

/** TG0 encodings of CD dword 0 [7:6]. */
export const CdTg0 = { G4K: 0, G64K: 1, G16K: 2 } as const;
/** TG1 encodings of CD dword 0 [23:22] (a different encoding from TG0). */
export const CdTg1 = { G16K: 1, G4K: 2, G64K: 3 } as const;

/** Output-size (IPS) encoding → number of bits: 0=32 … 6=52. */
export const IPS_BITS: readonly number[] = [32, 36, 40, 42, 44, 48, 52];

/** Every field of a Context Descriptor. Addresses are numbers (≤ 52 bits); whole dwords are bigint. */
export interface CdFields {
  // dword 0
  /** T0SZ [5:0]: TT0 input size is 64 − T0SZ bits. */
  t0sz: number;
  /** TG0 [7:6]: 0 = 4K, 1 = 64K, 2 = 16K, 3 reserved. */
  tg0: number;
  /** IRGN0 [9:8]: TT0 walk inner cacheability (0 NC, 1 WBWA, 2 WT, 3 WB). */
  irgn0: number;
  /** ORGN0 [11:10]: TT0 walk outer cacheability. */
  orgn0: number;
  /** SH0 [13:12]: TT0 walk shareability (0 NS, 2 OS, 3 IS). */
  sh0: number;
  /** EPD0 [14]: no walks through TTB0. */
  epd0: boolean;
  /** ENDI [15]: big-endian tables. */
  endi: boolean;
  /** T1SZ [21:16]. */
  t1sz: number;
  /** TG1 [23:22]: 1 = 16K, 2 = 4K, 3 = 64K. */
  tg1: number;
  /** IRGN1 [25:24]. */
  irgn1: number;
  /** ORGN1 [27:26]. */
  orgn1: number;
  /** SH1 [29:28]. */
  sh1: number;
  /** EPD1 [30]: no walks through TTB1. */
  epd1: boolean;
  /** V [31]. */
  valid: boolean;
  /** IPS [34:32]: output size, see `IPS_BITS`. */
  ips: number;
  /** AFFD [35]: an access flag of 0 does not fault. */
  affd: boolean;
  /** WXN [36]. */
  wxn: boolean;
  /** UWXN [37]. */
  uwxn: boolean;
  /** TBI0 [38]: top byte ignored for TT0. */
  tbi0: boolean;
  /** TBI1 [39]. */
  tbi1: boolean;
  /** PAN [40]. */
  pan: boolean;
  /** AA64 [41]: VMSAv8-64 tables. */
  aa64: boolean;
  /** HD [42]: hardware dirty-state update. */
  hd: boolean;
  /** HA [43]: hardware access-flag update. */
  ha: boolean;
  /** S [44]: stall fault model. */
  s: boolean;
  /** R [45]: record faults. */
  r: boolean;
  /** A [46]: abort faulting transactions. */
  a: boolean;
  /** ASET [47]: ASID not shared with the CPU. */
  aset: boolean;
  /** ASID [63:48]. */
  asid: number;
  // dword 1
  /** NSCFG0 [0]. */
  nscfg0: boolean;
  /** HAD0 [1]: hierarchical attributes disabled for TT0. */
  had0: boolean;
  /** TTB0 [51:4]: physical address of the TT0 start table (bits [3:0] zero). */
  ttb0: number;
  /**
   * The other bits of dword 1 in place: [3:2] (E0PD0, HAFT in SMMUv3.2+) and [63:52] (TTB0
   * [55:52] for VMSAv9-128, PnCH, EPAN …); 0 in a CD for this feature set.
   */
  ttb0Res0: bigint;
  // dword 2
  /** NSCFG1 [0]. */
  nscfg1: boolean;
  /** HAD1 [1]. */
  had1: boolean;
  /** TTB1 [51:4]. */
  ttb1: number;
  /** Reserved bits of dword 2 ([3:2] and [63:52]) in place. */
  ttb1Res0: bigint;
  // dwords 3–7
  /** MAIR (dword 3): eight 8-bit memory attributes. */
  mair: bigint;
  /** AMAIR (dword 4). */
  amair: bigint;
  /** Dword 5, IMPLEMENTATION DEFINED. */
  implementationDefined: bigint;
  /** Dword 6 (PARTID / PMG for MPAM), kept whole. */
  dword6: bigint;
  /** Dword 7 (VMSPtr), kept whole. */
  dword7: bigint;
}

/** Bits of dword 1/2 that are not NSCFG, HAD or TTB: [3:2] and [63:52]. */
export const CD_TTB_RES0_MASK = 0xfff0_0000_0000_000cn;

/** An all-zero (invalid) CD's fields. */
export function emptyCdFields(): CdFields {
  return {
    t0sz: 0,
    tg0: 0,
    irgn0: 0,
    orgn0: 0,
    sh0: 0,
    epd0: false,
    endi: false,
    t1sz: 0,
    tg1: 0,
    irgn1: 0,
    orgn1: 0,
    sh1: 0,
    epd1: false,
    valid: false,
    ips: 0,
    affd: false,
    wxn: false,
    uwxn: false,
    tbi0: false,
    tbi1: false,
    pan: false,
    aa64: false,
    hd: false,
    ha: false,
    s: false,
    r: false,
    a: false,
    aset: false,
    asid: 0,
    nscfg0: false,
    had0: false,
    ttb0: 0,
    ttb0Res0: 0n,
    nscfg1: false,
    had1: false,
    ttb1: 0,
    ttb1Res0: 0n,
    mair: 0n,
    amair: 0n,
    implementationDefined: 0n,
    dword6: 0n,
    dword7: 0n,
  };
}

const TWO_POW_28 = 2 ** 28;
const TWO_POW_48 = 2 ** 48;

/** Dword 1 or 2: NSCFG [0], HAD [1], TTB [51:4], the reserved bits in place. Writes both halves. */
function setTtbDword(
  words: Uint32Array,
  dw: number,
  nscfg: boolean | undefined,
  had: boolean | undefined,
  ttb: number | undefined,
  res0: bigint | undefined,
  name: string,
): void {
  // A missing field is 0, tested before any bigint operation (each one is a builtin call).
  const hasReserved = res0 !== undefined && res0 !== null && res0 !== 0n;
  if (hasReserved && (res0 & ~CD_TTB_RES0_MASK) !== 0n) {
    throw new VmmError(ErrorCode.ERANGE, `${name}Res0 may only hold bits [3:2] and [63:52] of its dword`, {
      field: `${name}Res0`,
    });
  }
  const address = ttb ?? 0;
  // Not `address % 16`: table addresses are above 2^31, and `%` of doubles is a call to fmod.
  if (address - Math.floor(address / 16) * 16 !== 0) {
    throw new VmmError(ErrorCode.ERANGE, `${name} = ${address} must be 16-byte aligned (field [51:4])`, {
      field: name,
    });
  }
  // TTB [51:4] as setField stores a 48-bit field at bit 4: 28 bits in the low half, 20 in the high.
  const field = address / 16;
  if (!Number.isSafeInteger(field) || field < 0 || field >= TWO_POW_48) {
    throw fieldRangeError(name, field, 48);
  }
  let lo = 0;
  let hi = 0;
  if (hasReserved) {
    setDword(words, dw, res0, `${name}Res0`);
    lo = words[2 * dw]!;
    hi = words[2 * dw + 1]!;
  }
  const high = Math.floor(field / TWO_POW_28);
  lo |= (nscfg ? 1 : 0) | (had ? 2 : 0) | ((field - high * TWO_POW_28) << 4);
  hi |= high;
  words[2 * dw] = lo >>> 0;
  words[2 * dw + 1] = hi >>> 0;
}

/**
 * Encodes a CD into 64 bytes (into `out` when given, at its start). Missing fields are 0.
 * A value that does not fit its field throws `VmmError(ERANGE)` and leaves `out` untouched.
 */
export function encodeCd(fields: Partial<CdFields>, out?: Uint8Array): Uint8Array {
  return writeWords(encodeCdWords(fields, scratchWords), out, 'a context descriptor');
}

/** Encoding scratch: writing a CD is synchronous, and typed-array allocation costs ~1 µs. */
const scratchWords = new Uint32Array(16);

/**
 * Encodes a CD into `words` (16 32-bit halves of its eight dwords, little-endian order), the form
 * a writer that stores dword by dword needs; returns `words`. Throws like `encodeCd`, and then
 * `words` holds no valid CD.
 *
 * Every CD write of a driver goes through here, so each dword is assembled in locals with one
 * range check per field (the checks, their order and their errors are those of `setField`)
 * rather than read-modify-written field by field.
 */
export function encodeCdWords(fields: Partial<CdFields>, words: Uint32Array): Uint32Array {
  const w = words;
  // V clear until the end: if a field throws, `words` holds no valid CD.
  w[0] = 0;
  const lo0 =
    fieldBits(fields.t0sz, 6, 't0sz') |
    (fieldBits(fields.tg0, 2, 'tg0') << 6) |
    (fieldBits(fields.irgn0, 2, 'irgn0') << 8) |
    (fieldBits(fields.orgn0, 2, 'orgn0') << 10) |
    (fieldBits(fields.sh0, 2, 'sh0') << 12) |
    (fields.epd0 ? 1 << 14 : 0) |
    (fields.endi ? 1 << 15 : 0) |
    (fieldBits(fields.t1sz, 6, 't1sz') << 16) |
    (fieldBits(fields.tg1, 2, 'tg1') << 22) |
    (fieldBits(fields.irgn1, 2, 'irgn1') << 24) |
    (fieldBits(fields.orgn1, 2, 'orgn1') << 26) |
    (fieldBits(fields.sh1, 2, 'sh1') << 28) |
    (fields.epd1 ? 1 << 30 : 0) |
    (fields.valid ? 1 << 31 : 0);
  const hi0 =
    fieldBits(fields.ips, 3, 'ips') |
    (fields.affd ? 1 << 3 : 0) |
    (fields.wxn ? 1 << 4 : 0) |
    (fields.uwxn ? 1 << 5 : 0) |
    (fields.tbi0 ? 1 << 6 : 0) |
    (fields.tbi1 ? 1 << 7 : 0) |
    (fields.pan ? 1 << 8 : 0) |
    (fields.aa64 ? 1 << 9 : 0) |
    (fields.hd ? 1 << 10 : 0) |
    (fields.ha ? 1 << 11 : 0) |
    (fields.s ? 1 << 12 : 0) |
    (fields.r ? 1 << 13 : 0) |
    (fields.a ? 1 << 14 : 0) |
    (fields.aset ? 1 << 15 : 0) |
    (fieldBits(fields.asid, 16, 'asid') << 16);
  setTtbDword(w, 1, fields.nscfg0, fields.had0, fields.ttb0, fields.ttb0Res0, 'ttb0');
  setTtbDword(w, 2, fields.nscfg1, fields.had1, fields.ttb1, fields.ttb1Res0, 'ttb1');
  setWholeDword(w, 3, fields.mair, 'mair');
  setWholeDword(w, 4, fields.amair, 'amair');
  setWholeDword(w, 5, fields.implementationDefined, 'implementationDefined');
  setWholeDword(w, 6, fields.dword6, 'dword6');
  setWholeDword(w, 7, fields.dword7, 'dword7');
  // Dword 0 last: every word of `words` is written, V with it.
  w[1] = hi0 >>> 0;
  w[0] = lo0 >>> 0;
  return w;
}

/** A field of at most 16 bits, checked as `setField` checks it (a missing field is 0). */
function fieldBits(value: number | undefined, width: number, name: string): number {
  const v = value ?? 0;
  if (!Number.isSafeInteger(v) || v < 0 || v >= 1 << width) throw fieldRangeError(name, v, width);
  return v;
}

/**
 * The last non-zero dword split into halves: a driver writes CD after CD with the same MAIR, and
 * splitting a bigint allocates.
 */
let lastDword = 0n;
let lastDwordLo = 0;
let lastDwordHi = 0;

/** `setDword` of a whole-dword field (a missing field is 0), remembering the last split. */
function setWholeDword(w: Uint32Array, dw: number, value: bigint | undefined, name: string): void {
  // A missing field is 0, tested before any bigint comparison (each one is a builtin call).
  if (value === undefined || value === null) {
    w[2 * dw] = 0;
    w[2 * dw + 1] = 0;
    return;
  }
  if (value === lastDword) {
    w[2 * dw] = lastDwordLo;
    w[2 * dw + 1] = lastDwordHi;
    return;
  }
  setDword(w, dw, value, name);
  lastDword = value;
  lastDwordLo = w[2 * dw]!;
  lastDwordHi = w[2 * dw + 1]!;
}

/** Decodes the 64-byte CD at `bytes[offset..]`; every bit lands in exactly one field. */
export function decodeCd(bytes: Uint8Array, offset = 0): CdFields {
  const w = readWords(bytes, 8, offset, 'a context descriptor');
  return {
    t0sz: getField(w, 0, 0, 6),
    tg0: getField(w, 0, 6, 2),
    irgn0: getField(w, 0, 8, 2),
    orgn0: getField(w, 0, 10, 2),
    sh0: getField(w, 0, 12, 2),
    epd0: getFlag(w, 0, 14),
    endi: getFlag(w, 0, 15),
    t1sz: getField(w, 0, 16, 6),
    tg1: getField(w, 0, 22, 2),
    irgn1: getField(w, 0, 24, 2),
    orgn1: getField(w, 0, 26, 2),
    sh1: getField(w, 0, 28, 2),
    epd1: getFlag(w, 0, 30),
    valid: getFlag(w, 0, 31),
    ips: getField(w, 0, 32, 3),
    affd: getFlag(w, 0, 35),
    wxn: getFlag(w, 0, 36),
    uwxn: getFlag(w, 0, 37),
    tbi0: getFlag(w, 0, 38),
    tbi1: getFlag(w, 0, 39),
    pan: getFlag(w, 0, 40),
    aa64: getFlag(w, 0, 41),
    hd: getFlag(w, 0, 42),
    ha: getFlag(w, 0, 43),
    s: getFlag(w, 0, 44),
    r: getFlag(w, 0, 45),
    a: getFlag(w, 0, 46),
    aset: getFlag(w, 0, 47),
    asid: getField(w, 0, 48, 16),
    nscfg0: getFlag(w, 1, 0),
    had0: getFlag(w, 1, 1),
    ttb0: getField(w, 1, 4, 48) * 16,
    ttb0Res0: getDword(w, 1) & CD_TTB_RES0_MASK,
    nscfg1: getFlag(w, 2, 0),
    had1: getFlag(w, 2, 1),
    ttb1: getField(w, 2, 4, 48) * 16,
    ttb1Res0: getDword(w, 2) & CD_TTB_RES0_MASK,
    mair: getDword(w, 3),
    amair: getDword(w, 4),
    implementationDefined: getDword(w, 5),
    dword6: getDword(w, 6),
    dword7: getDword(w, 7),
  };
}
