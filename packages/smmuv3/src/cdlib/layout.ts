/**
 * Where Context Descriptors live: a linear table, or an L1 table of descriptors pointing at
 * 64 KiB leaf tables of 1024 CDs (Linux `arm_smmu_alloc_cd_tables`, `arm_smmu_get_cd_ptr`;
 * IHI 0070 §5.4.1, STE.S1Fmt).
 */
import { hex, type PasidTableCfg, VmmError } from '@vmmkit/core';

export const CD_BYTES = 64;
export const L1_DESC_BYTES = 8;
/** Linux CTXDESC_SPLIT: a leaf table indexes 10 SSID bits. */
export const CTXDESC_SPLIT = 10;
export const CTXDESC_L2_ENTRIES = 1 << CTXDESC_SPLIT;
/** A linear table never exceeds 64 KiB (Linux CTXDESC_LINEAR_CDMAX). */
export const CTXDESC_LINEAR_CDMAX = 10;
/** SMMU_IDR1.SSIDSIZE is at most 20 bits. */
export const MAX_SSID_BITS = 20;

/** STE.S1Fmt values (and the virtio-iommu `s1fmt` byte). */
export const S1Fmt = { LINEAR: 0, L2_4K: 1, L2_64K: 2 } as const;
/** STE.S1DSS values: what a transaction without SSID uses. */
export const S1Dss = { TERMINATE: 0, BYPASS: 1, SSID0: 2 } as const;

/** The table geometry `alloc` chose. */
export interface ArmCdTableLayout {
  /** `S1Fmt.LINEAR` or `S1Fmt.L2_64K` (Linux never builds 4K leaves). */
  s1fmt: number;
  /** log2 of the number of CDs (STE.S1CDMax). */
  s1cdmax: number;
  /** CDs of a linear table, or L1 descriptors of a two-level one. */
  l1Entries: number;
  /** Leaf tables by L1 index (two-level only); 0 until the first write below it. */
  leaves: number[];
}

/** Per-table state under `cfg.vendor.arm`. The options may be set before `alloc`. */
export interface ArmCdTableCfg {
  /** STE.S1DSS reported by `attachDescriptor` (default `S1Dss.TERMINATE`). */
  s1dss?: number;
  /** Set by `alloc`, removed by `free`. */
  layout?: ArmCdTableLayout;
}

declare module '@vmmkit/core' {
  interface PasidVendorConfigs {
    arm: ArmCdTableCfg;
  }
}

function feature(cfg: PasidTableCfg, name: string): number | boolean | undefined {
  return cfg.iommuDev.features?.[name];
}

/** The allocated layout, or a clear error when `alloc` has not run. */
export function layoutOf(cfg: PasidTableCfg): ArmCdTableLayout {
  const layout = cfg.vendor.arm?.layout;
  if (!layout) {
    throw new VmmError(
      'EINVAL',
      `the ${cfg.format} table of ${cfg.iommuDev.name} is not allocated; call alloc() first`,
    );
  }
  return layout;
}

export function allocCdTable(cfg: PasidTableCfg): void {
  const arm = cfg.vendor.arm ?? {};
  if (arm.layout) {
    throw new VmmError(
      'EBUSY',
      `the ${cfg.format} table of ${cfg.iommuDev.name} is already allocated at ${hex(cfg.base)}`,
    );
  }
  const ssidBits = feature(cfg, 'ssidBits') ?? 0;
  if (
    typeof ssidBits !== 'number' ||
    !Number.isInteger(ssidBits) ||
    ssidBits < 0 ||
    ssidBits > MAX_SSID_BITS
  ) {
    throw new VmmError(
      'EINVAL',
      `features.ssidBits must be an integer 0..${MAX_SSID_BITS}, got ${String(ssidBits)}`,
    );
  }
  const s1dss = arm.s1dss ?? S1Dss.TERMINATE;
  checkS1dss(s1dss);
  const cd2l = feature(cfg, 'cd2l') === true;
  // Without SMMU_IDR0.CD2L a linear table is capped at 64 KiB, as current Linux does.
  const s1cdmax = cd2l ? ssidBits : Math.min(ssidBits, CTXDESC_LINEAR_CDMAX);
  const contexts = 2 ** s1cdmax;
  const linear = !cd2l || contexts <= CTXDESC_L2_ENTRIES;
  const l1Entries = linear ? contexts : Math.ceil(contexts / CTXDESC_L2_ENTRIES);
  const bytes = l1Entries * (linear ? CD_BYTES : L1_DESC_BYTES);
  // Naturally aligned, as Linux allocates it (and as S1ContextPtr alignment requires at least 64 B).
  const base = cfg.iommuDev.allocator.alloc(bytes, Math.max(bytes, 0x1000));
  // Every CD (or L1CD) starts invalid, whatever the allocator left there: the SMMU may fetch
  // any entry as soon as the STE points at the table. An allocator that zeroes has done it.
  if (cfg.iommuDev.allocator.zeroesPages !== true) cfg.iommuDev.memory.fill(base, bytes, 0);
  cfg.base = base;
  cfg.vendor.arm = {
    ...arm,
    s1dss,
    layout: {
      s1fmt: linear ? S1Fmt.LINEAR : S1Fmt.L2_64K,
      s1cdmax,
      l1Entries,
      leaves: linear ? [] : new Array<number>(l1Entries).fill(0),
    },
  };
}

export function freeCdTable(cfg: PasidTableCfg): void {
  const arm = cfg.vendor.arm;
  const layout = arm?.layout;
  if (!arm || !layout) return;
  const allocator = cfg.iommuDev.allocator;
  for (const leaf of layout.leaves) if (leaf !== 0) allocator.free(leaf);
  allocator.free(cfg.base);
  cfg.base = 0;
  arm.layout = undefined;
}

export function checkS1dss(s1dss: number): void {
  // IHI 0070 §5.2 STE.S1DSS: 0b11 is reserved.
  if (s1dss !== S1Dss.TERMINATE && s1dss !== S1Dss.BYPASS && s1dss !== S1Dss.SSID0) {
    throw new VmmError(
      'EINVAL',
      `s1dss must be 0 (terminate), 1 (bypass) or 2 (use CD 0), got ${String(s1dss)}`,
    );
  }
}

/** Rejects an SSID the table cannot hold (Linux answers -E2BIG). */
export function checkSsid(cfg: PasidTableCfg, layout: ArmCdTableLayout, ssid: number): void {
  // S1CDMax is at most MAX_SSID_BITS (20): a shift, not a power, on every CD write.
  if (!Number.isInteger(ssid) || ssid < 0 || ssid >= 1 << layout.s1cdmax) {
    throw new VmmError(
      'ERANGE',
      `SSID ${String(ssid)} is outside the ${cfg.format} table of ${cfg.iommuDev.name} (S1CDMax ${layout.s1cdmax}: 0..${2 ** layout.s1cdmax - 1})`,
      { ssid, s1cdmax: layout.s1cdmax },
    );
  }
}

/**
 * Guest-physical address of the CD of `ssid`, or 0 when its leaf table does not exist and
 * `onNewLeaf` is not given. `onNewLeaf` allocates the leaf, publishes its L1 descriptor and is
 * told so (the caller must then invalidate the L1 entry: an invalid L1CD may be cached).
 */
export function cdAddress(
  cfg: PasidTableCfg,
  layout: ArmCdTableLayout,
  ssid: number,
  onNewLeaf?: () => void,
): number {
  if (layout.s1fmt === S1Fmt.LINEAR) return cfg.base + ssid * CD_BYTES;
  const l1 = Math.floor(ssid / CTXDESC_L2_ENTRIES);
  let leaf = layout.leaves[l1]!;
  if (leaf === 0) {
    if (!onNewLeaf) return 0;
    const bytes = CTXDESC_L2_ENTRIES * CD_BYTES;
    const allocator = cfg.iommuDev.allocator;
    leaf = allocator.alloc(bytes, bytes);
    // The leaf is written (all CDs invalid) before its L1 descriptor publishes it, whatever the
    // allocator left there (Linux: a zeroed dma_alloc_coherent block), unless the allocator zeroes.
    if (allocator.zeroesPages !== true) cfg.iommuDev.memory.fill(leaf, bytes, 0);
    layout.leaves[l1] = leaf;
    // L1CD: V [0], L2Ptr [51:12]. The high half first, so V never pairs with a stale pointer.
    const desc = cfg.base + l1 * L1_DESC_BYTES;
    const memory = cfg.iommuDev.memory;
    memory.writeU32(desc + 4, Math.floor(leaf / 2 ** 32) & 0xf_ffff);
    memory.writeU32(desc, ((leaf % 2 ** 32) & 0xffff_f000) | 1);
    onNewLeaf();
  }
  return leaf + (ssid % CTXDESC_L2_ENTRIES) * CD_BYTES;
}
