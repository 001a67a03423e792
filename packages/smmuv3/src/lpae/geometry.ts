/**
 * VMSAv8-64 stage-1 translation geometry as Linux io-pgtable-arm computes it: the granule a
 * page-size bitmap selects, the start level, the bits each level indexes, and the TCR/MAIR
 * values a table of that geometry needs (drivers/iommu/io-pgtable-arm.c,
 * `arm_lpae_restrict_pgsizes`, `arm_lpae_alloc_pgtable`, `arm_64_lpae_alloc_pgtable_s1`).
 */
import { VmmError } from '@vmmkit/core';

export const SZ_4K = 0x1000;
export const SZ_16K = 0x4000;
export const SZ_64K = 0x1_0000;
export const SZ_2M = 0x20_0000;
export const SZ_32M = 0x200_0000;
export const SZ_512M = 0x2000_0000;
export const SZ_1G = 0x4000_0000;

/** The CPU page size Linux prefers when several granules are offered (an arm64 guest with 4K pages). */
export const CPU_PAGE_SIZE = SZ_4K;

/** Widest input and output size this format builds (no 52-bit VA/PA packing). */
export const LPAE_MAX_ADDR_BITS = 48;
/**
 * Narrowest input size: SMMUv3 accepts CD.T0SZ only up to 39 (IHI 0070 §5.4; QEMU
 * `decode_cd` raises C_BAD_CD above it), so a table must translate at least 25 bits.
 */
export const LPAE_MIN_IAS = 25;

/** Shareability encodings (TCR SH0 and PTE SH). */
export const Shareability = { NON: 0, OUTER: 2, INNER: 3 } as const;
/** Cacheability encodings of TCR IRGN0/ORGN0. */
export const Cacheability = { NC: 0, WBWA: 1, WT: 2, WB: 3 } as const;
/** TG0 encodings shared by TCR_EL1 and CD dword 0. */
export const Tg0 = { [SZ_4K]: 0, [SZ_64K]: 1, [SZ_16K]: 2 } as Readonly<Record<number, number>>;

/** MAIR indexes io-pgtable-arm selects from IOMMU_* protections. */
export const MairIndex = { NC: 0, CACHE: 1, DEV: 2, INC_OCACHE: 3 } as const;
/** Linux's fixed MAIR: NC 0x44, WB RW-alloc 0xff, Device-nGnRE 0x04, inner-NC/outer-WB 0xf4. */
export const LPAE_DEFAULT_MAIR = 0x0000_0000_f404_ff44n;

/** IPS encoding of each output size Linux accepts (`ARM_LPAE_TCR_PS_*`). */
const IPS_OF_OAS: Readonly<Record<number, number>> = { 32: 0, 36: 1, 40: 2, 42: 3, 44: 4, 48: 5 };

/** The translation-control fields of TT0, as CD dword 0 and TCR_EL1 both carry them. */
export interface ArmLpaeS1Tcr {
  /** T0SZ = 64 − ias. */
  tsz: number;
  /** TG0: 0 = 4K, 1 = 64K, 2 = 16K. */
  tg: number;
  /** IRGN0 / ORGN0: walk cacheability (`Cacheability`). */
  irgn: number;
  orgn: number;
  /** SH0: walk shareability (`Shareability`). */
  sh: number;
  /** IPS: output size encoding (32→0 … 48→5). */
  ips: number;
}

/** What `alloc` writes into `cfg.vendor.arm` (Linux `struct arm_lpae_s1_cfg`, plus the geometry). */
export interface ArmLpaeS1Cfg {
  /** Guest-physical address of the start-level table (TTB0). */
  ttbr: number;
  tcr: ArmLpaeS1Tcr;
  mair: bigint;
  /** Translation granule in bytes (4K, 16K or 64K). */
  granule: number;
  /** First level walked (0..3) and how many levels a walk visits. */
  startLevel: number;
  levels: number;
}

/** Whether `size` (a power of two) is set in `bitmap`, which may exceed 32 bits. */
export function hasPgsize(bitmap: number, size: number): boolean {
  return Math.floor(bitmap / size) % 2 === 1;
}

/** The powers of two set in `bitmap`, ascending. Bitwise operators would truncate past bit 31. */
export function pgsizesOf(bitmap: number): number[] {
  const sizes: number[] = [];
  for (let size = 1; size <= bitmap; size *= 2) if (hasPgsize(bitmap, size)) sizes.push(size);
  return sizes;
}

/**
 * Linux `arm_lpae_restrict_pgsizes`: the granule is the CPU page size when offered, otherwise the
 * largest smaller size, otherwise the smallest larger one; the bitmap keeps that granule's blocks.
 */
export function chooseGranule(bitmap: number): { granule: number; pgsizeBitmap: number } {
  const sizes = pgsizesOf(bitmap);
  let granule = 0;
  if (hasPgsize(bitmap, CPU_PAGE_SIZE)) granule = CPU_PAGE_SIZE;
  else if (sizes.some((s) => s < CPU_PAGE_SIZE)) granule = sizes.filter((s) => s < CPU_PAGE_SIZE).pop()!;
  else if (sizes.length > 0) granule = sizes[0]!;
  const allowed =
    granule === SZ_4K
      ? [SZ_4K, SZ_2M, SZ_1G]
      : granule === SZ_16K
        ? [SZ_16K, SZ_32M]
        : granule === SZ_64K
          ? [SZ_64K, SZ_512M]
          : [];
  const pgsizeBitmap = allowed.filter((s) => hasPgsize(bitmap, s)).reduce((a, s) => a + s, 0);
  return { granule: pgsizeBitmap === 0 ? 0 : granule, pgsizeBitmap };
}

/** Level geometry of one table (Linux `arm_lpae_io_pgtable`: pg_shift, bits_per_level, levels). */
export class LpaeGeometry {
  readonly granule: number;
  readonly pgShift: number;
  readonly bitsPerLevel: number;
  readonly levels: number;
  readonly startLevel: number;
  /** Index bits of the start-level table. */
  readonly pgdBits: number;
  /** Bytes of the start-level table (at least 64: the walker needs 64-byte aligned TTB0). */
  readonly pgdBytes: number;
  /** `2^levelShift[l]` = bytes one entry of level `l` covers (block size). */
  readonly blockSize: readonly number[];
  /** Entries of a table at level `l`. */
  readonly entries: readonly number[];

  constructor(granule: number, ias: number) {
    this.granule = granule;
    this.pgShift = Math.log2(granule);
    this.bitsPerLevel = this.pgShift - 3;
    const vaBits = ias - this.pgShift;
    this.levels = Math.ceil(vaBits / this.bitsPerLevel);
    this.startLevel = 4 - this.levels;
    this.pgdBits = vaBits - this.bitsPerLevel * (this.levels - 1);
    this.pgdBytes = Math.max(8 * 2 ** this.pgdBits, 64);
    const blockSize: number[] = [];
    const entries: number[] = [];
    for (let level = 0; level < 4; level++) {
      blockSize.push(2 ** (this.pgShift + (3 - level) * this.bitsPerLevel));
      entries.push(level === this.startLevel ? 2 ** this.pgdBits : 2 ** this.bitsPerLevel);
    }
    this.blockSize = blockSize;
    this.entries = entries;
  }

  /** Index of `iova` in a table of `level`. Masking after division keeps the low bits exact. */
  index(iova: number, level: number): number {
    return Math.floor(iova / this.blockSize[level]!) & (this.entries[level]! - 1);
  }

  /** The level whose entries are `size` bytes, or -1. */
  levelOf(size: number): number {
    for (let level = this.startLevel; level < 4; level++) if (this.blockSize[level] === size) return level;
    return -1;
  }
}

/** The IPS encoding of an output size, or `undefined` when Linux would refuse it. */
export function ipsOf(oas: number): number | undefined {
  return IPS_OF_OAS[oas];
}

/** Linux `arm_64_lpae_alloc_pgtable_s1` TCR fields. */
export function lpaeS1Tcr(
  geometry: LpaeGeometry,
  ias: number,
  oas: number,
  coherentWalk: boolean,
): ArmLpaeS1Tcr {
  const ips = ipsOf(oas);
  if (ips === undefined) {
    throw new VmmError(
      'EINVAL',
      `output size ${oas} bits has no IPS encoding; use 32, 36, 40, 42, 44 or 48`,
      {
        oas,
      },
    );
  }
  // A walker that does not snoop CPU caches must fetch tables as non-cacheable, outer shareable.
  return {
    tsz: 64 - ias,
    tg: Tg0[geometry.granule]!,
    irgn: coherentWalk ? Cacheability.WBWA : Cacheability.NC,
    orgn: coherentWalk ? Cacheability.WBWA : Cacheability.NC,
    sh: coherentWalk ? Shareability.INNER : Shareability.OUTER,
    ips,
  };
}
