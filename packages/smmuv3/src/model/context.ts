/**
 * Validation of fetched STEs and CDs into the decoded form the walker uses.
 *
 * Input is 16 little-endian 32-bit words (8 dwords) exactly as read from guest memory; nothing
 * here trusts them. Each check names the rule it enforces (IHI 0070 = SMMUv3 architecture;
 * where the rule follows QEMU's model rather than a verified spec sentence, it says so).
 */

import { IPS_BITS } from '../codec/cd.js';
import { EventType } from '../codec/event.js';
import { tlbHashOf } from './iotlb.js';

/** Parameters of the modelled SMMU that validation depends on. */
export interface SmmuParams {
  oas: number;
  ssidBits: number;
  asid16: boolean;
  twoLevelCd: boolean;
  granule4k: boolean;
  granule16k: boolean;
  granule64k: boolean;
}

export const StreamKind = { ABORT: 0, BYPASS: 1, S1: 2 } as const;

/** A valid STE, decoded. */
export interface StreamInfo {
  kind: number;
  s1fmt: number;
  s1cdmax: number;
  s1dss: number;
  /** S1ContextPtr bits [51:6]. */
  contextPtr: number;
  /** S1ContextPtr bits [55:52] were not zero: the pointer is beyond the OAS. */
  contextPtrHigh: boolean;
  /** STE.PRIVCFG [113:112] (0b01 behaves as 0b00). */
  privcfg: number;
  /** STE.INSTCFG [115:114] (0b01 behaves as 0b00). */
  instcfg: number;
}

/**
 * IHI 0070 §5.2 PRIVCFG (0b10 unprivileged, 0b11 privileged) and INSTCFG (0b10 data, 0b11
 * instruction; reads only, a write stays a data write) as a map over access codes.
 */
export function accessMapOf(privcfg: number, instcfg: number): Int8Array | null {
  if (privcfg < 2 && instcfg < 2) return null;
  const map = new Int8Array(6);
  for (let code = 0; code < 6; code++) {
    let access = code % 3;
    let privileged = code >= 3;
    if (privcfg >= 2) privileged = privcfg === 3;
    if (instcfg >= 2 && access !== 1) access = instcfg === 3 ? 2 : 0;
    map[code] = access + (privileged ? 3 : 0);
  }
  return map;
}

/** Outcome of a validation: the decoded structure, or the event type and why. */
export type Checked<T> = { ok: true; value: T } | { ok: false; type: number; reason: string };

function bad<T>(type: number, reason: string): Checked<T> {
  return { ok: false, type, reason };
}

/** IHI 0070 §5.2: STE validity for the stage-1-only SMMU this model is (IDR0.S1P=1, S2P=0). */
export function checkSte(w: Uint32Array, p: SmmuParams): Checked<StreamInfo> {
  const lo0 = w[0]!;
  const hi0 = w[1]!;
  const lo1 = w[2]!;
  if ((lo0 & 1) === 0) return bad(EventType.C_BAD_STE, 'STE.V is 0');
  const config = (lo0 >>> 1) & 7;
  // §5.2 S1Fmt: 0b11 is Reserved and behaves as 0b00 (linear).
  const s1fmt = ((lo0 >>> 4) & 3) % 3;
  // S1ContextPtr is [55:6]; bits [55:52] lie beyond any OAS this model has (kept as a flag, a
  // number cannot hold them exactly). Bits [58:56] are RES0 and ignored (§5: either is allowed).
  const contextPtr = (hi0 & 0xfffff) * 2 ** 32 + ((lo0 & 0xffff_ffc0) >>> 0);
  const contextPtrHigh = ((hi0 >>> 20) & 0xf) !== 0;
  const s1cdmax = hi0 >>> 27;
  // §5.2 S1DSS: 0b11 is Reserved and behaves as 0b00 (terminate).
  const s1dss = (lo1 & 3) % 3;
  const hi1 = w[3]!;
  const privcfg = (hi1 >>> 16) & 3;
  const instcfg = (hi1 >>> 18) & 3;
  const info = {
    kind: StreamKind.S1 as number,
    s1fmt,
    s1cdmax,
    s1dss,
    contextPtr,
    contextPtrHigh,
    privcfg,
    instcfg,
  };
  // §5.2 Config: 0b000 aborts without an event and the reserved 0b001–0b011 behave as 0b000;
  // 0b100 bypasses both stages; 0b11x needs stage 2, ILLEGAL with IDR0.S2P == 0.
  if (config < 4) return { ok: true, value: { ...info, kind: StreamKind.ABORT } };
  if (config === 4) return { ok: true, value: { ...info, kind: StreamKind.BYPASS } };
  if (config !== 5) return bad(EventType.C_BAD_STE, `STE.Config 0b${config.toString(2)} needs stage 2`);
  // §5.2 S1CDMax: 0 to IDR1.SSIDSIZE inclusive; other values are ILLEGAL.
  if (s1cdmax > p.ssidBits) {
    return bad(EventType.C_BAD_STE, `STE.S1CDMax ${s1cdmax} exceeds SSIDSIZE ${p.ssidBits}`);
  }
  // §5.2 S1Fmt: a two-level CD table without IDR0.CD2L is ILLEGAL (ignored when S1CDMax = 0).
  if (s1cdmax !== 0 && s1fmt !== 0 && !p.twoLevelCd) {
    return bad(EventType.C_BAD_STE, 'STE.S1Fmt selects a two-level CD table but CD2L is not implemented');
  }
  // §5.5: with stage 1 enabled, S1STALLD == 1 is ILLEGAL unless STALL_MODEL == 0b00 (this SMMU
  // has no stall: 0b01). STRW is RES0 without IDR0.Hyp, and is ignored.
  if (((lo1 >>> 27) & 1) === 1)
    return bad(EventType.C_BAD_STE, 'STE.S1STALLD is 1 but the SMMU cannot stall');
  return { ok: true, value: info };
}

const TG0_SHIFT = [12, 16, 14, -1];
const TG1_SHIFT = [-1, 14, 12, 16];

/** A valid CD, decoded for the TT0 walk. Numbers only: this is what the hot path reads. */
export class S1Context {
  /** 0 = walk, 1 = stage 1 bypassed (S1DSS bypass or STE Config bypass). */
  kind = 0;
  asid = 0;
  /** `tlbHashOf(asid)`, precomputed for the IOTLB fast path. */
  tlbHash = 0;
  granuleShift = 12;
  stride = 9;
  inputSize = 48;
  /** 2^inputSize: TT0 covers [0, inputLimit). */
  inputLimit = 2 ** 48;
  startLevel = 0;
  startShift = 39;
  startIndexBits = 9;
  /** TTB0 with the bits below the start table's size cleared. */
  tableBase = 0;
  /** Effective output size: min(IPS, OAS). */
  outputBits = 48;
  outputLimit = 2 ** 48;
  /** Lowest level where a block descriptor is allowed. */
  minBlockLevel = 1;
  /** 64K granule with a 52-bit output: PA[51:48] sit in descriptor bits [15:12]. */
  lpa = false;
  affd = false;
  /** CD.R: record translation-class faults. */
  record = true;
  epd0 = false;
  /** CD.HAD0: ignore APTable / XNTable / PXNTable. */
  had = false;
  wxn = false;
  pan = false;
  /** Where the CD was read, for explain (−1 when not from memory). */
  cdAddress = -1;
  /**
   * STE.PRIVCFG / INSTCFG applied to an access code (read 0, write 1, exec 2, +3 privileged),
   * or null when both say "use incoming".
   */
  accessMap: Int8Array | null = null;
}

/** The context of a stage-1-bypassed stream. */
export const BYPASS_CONTEXT: S1Context = (() => {
  const c = new S1Context();
  c.kind = 1;
  return c;
})();

function checkTtb(
  lo: number,
  hi: number,
  n: number,
  tsz: number,
  shift: number,
  p: SmmuParams,
  outputBits: number,
): string | null {
  if (shift < 0) return `TG${n} selects a reserved granule`;
  if ((shift === 12 && !p.granule4k) || (shift === 14 && !p.granule16k) || (shift === 16 && !p.granule64k)) {
    return `TG${n} selects a granule the SMMU does not implement`;
  }
  // §5.4 TnSZ: 16 (no IDR5.VAX) to 39 (no IDR3.STT); out of range is ILLEGAL (SMMUv3.1+).
  if (tsz < 16 || tsz > 39) return `T${n}SZ ${tsz} is outside 16..39`;
  // §5.4 TTBn: outside the effective IPS is ILLEGAL, and so is beyond 48 bits with a granule
  // smaller than 64K (no DS). The other bits of the dword (E0PD, HAFT, PnCH …, RES0 for this
  // SMMU's features) are ignored.
  const ttb = (hi & 0xfffff) * 2 ** 32 + ((lo & 0xffff_fff0) >>> 0);
  if (ttb >= 2 ** outputBits) {
    return `TTB${n} 0x${ttb.toString(16)} is beyond the ${outputBits}-bit output size`;
  }
  if (shift !== 16 && ttb >= 2 ** 48) return `TTB${n} is beyond 48 bits with a granule below 64K`;
  return null;
}

/** IHI 0070 §5.4: CD validity for an AArch64, little-endian, terminate-model SMMU without HTTU or stall. */
export function checkCd(w: Uint32Array, p: SmmuParams): Checked<S1Context> {
  const lo0 = w[0]!;
  const hi0 = w[1]!;
  if (lo0 >>> 31 === 0) return bad(EventType.C_BAD_CD, 'CD.V is 0');
  if (((hi0 >>> 9) & 1) === 0) return bad(EventType.C_BAD_CD, 'CD.AA64 is 0 (AArch32 tables unsupported)');
  // §5.4 HA/HD without IDR0.HTTU are ILLEGAL; §5.5: S=1 with STALL_MODEL 0b01 and A=0 with
  // TERM_MODEL 1 (abort only) are ILLEGAL.
  if (((hi0 >>> 10) & 3) !== 0) return bad(EventType.C_BAD_CD, 'CD.HA/HD set but HTTU is not implemented');
  if (((hi0 >>> 12) & 1) !== 0)
    return bad(EventType.C_BAD_CD, 'CD.S set but the stall model is not implemented');
  if (((hi0 >>> 14) & 1) === 0) return bad(EventType.C_BAD_CD, 'CD.A is 0 but TERM_MODEL requires abort');
  const asid = hi0 >>> 16;
  if (!p.asid16 && asid > 0xff) return bad(EventType.C_BAD_CD, `CD.ASID ${asid} is wider than 8 bits`);
  // §5.4 IPS: 0b111 is Reserved and behaves as 0b110 (SMMUv3.1–3.3); the effective IPS is
  // capped to the OAS.
  const ips = Math.min(hi0 & 7, 6);
  const outputBits = Math.min(IPS_BITS[ips]!, p.oas);
  const epd0 = ((lo0 >>> 14) & 1) === 1;
  const epd1 = ((lo0 >>> 30) & 1) === 1;
  // §5.4 ENDI: big-endian tables are ILLEGAL (IDR0.TTENDIAN = little only), unless no TTB is walked.
  if (((lo0 >>> 15) & 1) !== 0 && !(epd0 && epd1)) {
    return bad(EventType.C_BAD_CD, 'CD.ENDI is 1 but the SMMU walks little-endian tables only');
  }
  const t0sz = lo0 & 0x3f;
  const shift0 = TG0_SHIFT[(lo0 >>> 6) & 3]!;
  if (!epd0) {
    const why = checkTtb(w[2]!, w[3]!, 0, t0sz, shift0, p, outputBits);
    if (why !== null) return bad(EventType.C_BAD_CD, why);
  }
  if (!epd1) {
    const why = checkTtb(w[4]!, w[5]!, 1, (lo0 >>> 16) & 0x3f, TG1_SHIFT[(lo0 >>> 22) & 3]!, p, outputBits);
    if (why !== null) return bad(EventType.C_BAD_CD, why);
  }
  const c = new S1Context();
  c.asid = asid;
  c.tlbHash = tlbHashOf(asid);
  c.epd0 = epd0;
  c.affd = ((hi0 >>> 3) & 1) === 1;
  c.wxn = ((hi0 >>> 4) & 1) === 1;
  c.pan = ((hi0 >>> 8) & 1) === 1;
  c.record = ((hi0 >>> 13) & 1) === 1;
  c.had = ((w[2]! >>> 1) & 1) === 1;
  c.outputBits = outputBits;
  c.outputLimit = 2 ** outputBits;
  if (!epd0) {
    const g = shift0;
    const stride = g - 3;
    const inputSize = 64 - t0sz;
    // VMSAv8-64 start level: enough levels of `stride` bits to cover the input above the page offset.
    const startLevel = 4 - Math.ceil((inputSize - g) / stride);
    const startShift = g + (3 - startLevel) * stride;
    const tableBits = inputSize - startShift + 3;
    const ttb = (w[3]! & 0xfffff) * 2 ** 32 + ((w[2]! & 0xffff_fff0) >>> 0);
    c.granuleShift = g;
    c.stride = stride;
    c.inputSize = inputSize;
    c.inputLimit = 2 ** inputSize;
    c.startLevel = startLevel;
    c.startShift = startShift;
    c.startIndexBits = inputSize - startShift;
    // §5.4 TTB0: bits below the start table's alignment (its size; at least 64 bytes with a
    // 52-bit output) are treated as zero.
    const alignBits = outputBits === 52 ? Math.max(tableBits, 6) : tableBits;
    c.tableBase = ttb - (ttb % 2 ** alignBits);
    // Blocks: 4K at L1/L2, 16K at L2, 64K at L2 (and L1 with 52-bit output, FEAT_LPA).
    c.minBlockLevel = g === 12 ? 1 : g === 16 && p.oas === 52 ? 1 : 2;
    // IHI 0070 §5.4 IPS: with a 64K granule a descriptor holds a 52-bit address (PA[51:48] in
    // bits [15:12]) whenever the SMMU implements 52-bit output; the range check against the
    // effective IPS then raises F_ADDR_SIZE for those bits, it does not ignore them.
    c.lpa = g === 16 && p.oas === 52;
  }
  return { ok: true, value: c };
}
