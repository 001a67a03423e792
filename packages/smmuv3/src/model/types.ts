/**
 * Public shapes of the SMMUv3 translation model: options, results, statistics.
 */
import type { GuestMemory } from '@vmmkit/core';
import type { SmmuEvent } from '../codec/event.js';

/** What the modelled SMMU implements (the IDR bits software would read). */
export interface Smmuv3Features {
  /** IDR0.CD2L: two-level CD tables (S1Fmt 1 and 2). Default true. */
  twoLevelCdTables: boolean;
  /** IDR0.ST_LEVEL: two-level stream tables. Default true. */
  twoLevelStreamTables: boolean;
  /** IDR0.ASID16: 16-bit ASIDs (else 8). Default true. */
  asid16: boolean;
  /** IDR5.GRAN4K / GRAN16K / GRAN64K. Default all true. */
  granule4k: boolean;
  granule16k: boolean;
  granule64k: boolean;
  /** IDR1.SIDSIZE: StreamID bits. Default 32. */
  sidBits: number;
  /** Direct-mapped IOTLB entries (a power of two); 0 disables the IOTLB. Default 4096. */
  iotlbEntries: number;
}

export interface Smmuv3Options {
  memory: GuestMemory;
  /** IDR5.OAS in bits: 32, 36, 40, 42, 44, 48 or 52. Default 48. */
  oas?: number;
  /** IDR1.SSIDSIZE: SubstreamID bits, 0–20. Default 20. */
  ssidBits?: number;
  features?: Partial<Smmuv3Features>;
}

export interface StreamTableConfig {
  /**
   * STRTAB_BASE address (64-byte aligned). As on hardware, the SMMU ignores the bits below the
   * table's alignment: a linear table's size, or max(64 bytes, L1 size) for a two-level one.
   */
  base: number;
  /** STRTAB_BASE_CFG.LOG2SIZE: StreamIDs 0 … 2^log2Size − 1 are valid. */
  log2Size: number;
  format: 'linear' | '2-level';
  /** STRTAB_BASE_CFG.SPLIT for the 2-level format: 6, 8 or 10. Default 8 (Linux). */
  split?: number;
}

export type DmaAccessName = 'read' | 'write' | 'exec';

export interface TranslateRequest {
  sid: number;
  /** SubstreamID (PASID); absent for a transaction without one. */
  ssid?: number;
  iova: number;
  access: DmaAccessName;
  /**
   * PnU of the transaction. Default false: a device DMA without a PASID privilege bit is an
   * unprivileged (EL0-like) access, so leaves need AP[1] (Linux sets it unless IOMMU_PRIV).
   */
  privileged?: boolean;
}

export interface Permissions {
  read: boolean;
  write: boolean;
  exec: boolean;
}

export type TranslateResult =
  | {
      ok: true;
      pa: number;
      perm: Permissions;
      /** Level of the leaf descriptor; −1 when stage 1 was bypassed. */
      level: number;
      /** Size of the page or block (4 KiB for a bypassed stage 1). */
      pageSize: number;
    }
  | {
      ok: false;
      /** The architectural event. Type 0 ("ABORT") = an STE with Config abort: no event exists. */
      event: SmmuEvent;
      /** Whether the SMMU writes the record to the event queue (CD.R=0 suppresses fault records). */
      recorded: boolean;
    };

/** Filled by `translateInto`; one per caller, reused. `perm` bits: 1 read, 2 write, 4 exec. */
export interface TranslationOut {
  pa: number;
  pageSize: number;
  perm: number;
  level: number;
  event: SmmuEvent | null;
  recorded: boolean;
}

export function createTranslationOut(): TranslationOut {
  return { pa: 0, pageSize: 0, perm: 0, level: 0, event: null, recorded: false };
}

/** Access codes of `translateInto`: read 0, write 1, exec 2; add 3 for a privileged access. */
export const AccessCode = { READ: 0, WRITE: 1, EXEC: 2, PRIVILEGED: 3 } as const;

export interface Smmuv3Stats {
  translations: number;
  /** Stage-1 table walks started (IOTLB misses that reached the tables). */
  walks: number;
  iotlbHits: number;
  iotlbMisses: number;
  cdCacheHits: number;
  cdCacheMisses: number;
  steCacheHits: number;
  steCacheMisses: number;
  /** Faults returned (recorded or not). */
  faults: number;
  commands: number;
}

export function createStats(): Smmuv3Stats {
  return {
    translations: 0,
    walks: 0,
    iotlbHits: 0,
    iotlbMisses: 0,
    cdCacheHits: 0,
    cdCacheMisses: 0,
    steCacheHits: 0,
    steCacheMisses: 0,
    faults: 0,
    commands: 0,
  };
}

/** Outcome of one CMDQ command (IHI 0070 §7.1: CMDQ_CONS.ERR codes). */
export type CommandResult = { ok: true } | { ok: false; error: 'CERROR_ILL'; reason: string };
