import type { GuestMemory } from '../memory/guest-memory.js';

/**
 * Host side of nested translation: a plugin walks tables the *guest* built, for a paravirtual
 * IOMMU that received them (virtio-iommu ATTACH_TABLE). The device finds backends by table
 * format number through the container, so a new vendor never edits the device.
 */

/** Why a nested translation failed, in the vocabulary of virtio-iommu fault reports (PROTOCOL.md). */
export const NestedFaultReason = {
  UNKNOWN: 0,
  /** No usable context: bad stream/context configuration, or a substream the table does not hold. */
  DOMAIN: 1,
  MAPPING: 2,
  /** External abort while walking: a table address outside guest RAM. */
  WALK_EABT: 3,
  /** Translation fault: a descriptor was invalid (SMMUv3 F_TRANSLATION). */
  PTE_FETCH: 4,
  PERMISSION: 5,
  /** Access flag fault. */
  ACCESS: 6,
  /** Address size fault: an input or output address beyond the configured size. */
  OOR_ADDRESS: 7,
} as const;
export type NestedFaultReason = (typeof NestedFaultReason)[keyof typeof NestedFaultReason];

/** Access type of a DMA, as numbers so the hot path compares small integers. */
export const DmaAccess = { READ: 0, WRITE: 1, EXEC: 2 } as const;
export type DmaAccess = (typeof DmaAccess)[keyof typeof DmaAccess];

/** No PASID: a transaction without a substream. */
export const NO_PASID = -1;

/**
 * Filled by `NestedTable.translate`; one per caller, reused for every translation so the hot
 * path allocates nothing.
 */
export interface NestedTranslation {
  /** Output (guest-physical) address of the translated IOVA. */
  pa: number;
  /** Size of the page or block that mapped it (the translation is valid for the aligned range). */
  pageSize: number;
  /** Permission bits of the leaf: 1 read, 2 write, 4 exec. */
  perm: number;
  /** Set on a fault: the reason, and the vendor's own event (e.g. an SMMUv3 event record). */
  fault: NestedFaultReason;
  event: unknown;
}

export function createNestedTranslation(): NestedTranslation {
  return { pa: 0, pageSize: 0, perm: 0, fault: NestedFaultReason.UNKNOWN, event: null };
}

/** One step of an explained translation, for "why did this DMA go there / fault" views. */
export interface TranslationStep {
  /** What was read or decided, e.g. `STE`, `CD`, `L0 table`, `result`. */
  label: string;
  /** Guest-physical address read, when the step read memory. */
  address?: number;
  /** The raw value read (hex words) or the decision taken. */
  value?: string;
  /** Decoded fields worth showing. */
  fields?: Record<string, string | number | boolean>;
  /** Nested steps (e.g. the levels of a page-table walk). */
  children?: TranslationStep[];
}

/** Decoded INVALIDATE request (PROTOCOL.md), passed to the table of the domain. */
export interface NestedInvalidation {
  granularity: 'domain' | 'pasid' | 'va';
  caches: { iotlb: boolean; devIotlb: boolean; pasid: boolean };
  /** Present when the PASID-valid flag was set. */
  pasid?: number;
  /** Present when the ARCHID-valid flag was set (the ASID for Arm). */
  archid?: bigint;
  leaf: boolean;
  virtStart: bigint;
  nrPages: bigint;
  /** log2 of the page size. */
  granule: number;
}

/** What an endpoint accepts, reported by PROBE as PAGE_TABLE_FMT / PASID_TABLE_FMT and friends. */
export interface NestedFormatDescription {
  /** virtio-iommu table format number (PROTOCOL.md: 1 Arm LPAE, 2 SMMUv3 PASID table, 3 virt). */
  format: number;
  /** A PASID table (PROBE type 7) or a single page table (type 6). */
  kind: 'pasid-table' | 'page-table';
  asidBits: number;
  flags: number;
  /** Output address size in bits (OUTPUT_SIZE). */
  outputBits: number;
  /** PASID bits (PASID_SIZE); 0 for page-table formats. */
  pasidBits: number;
  /** Page sizes the format's tables may use. */
  pageSizeMask: bigint;
  /** Input address size in bits. */
  inputBits: number;
}

export type NestedAttachResult =
  | { ok: true; table: NestedTable }
  | { ok: false; status: 'inval' | 'unsupp' | 'fault' | 'range'; reason: string };

export interface NestedAttachRequest {
  memory: GuestMemory;
  endpoint: number;
  /** Bytes 16..83 of ATTACH_TABLE: the le16 format, then the format payload. */
  payload: Uint8Array;
  /** The PASID bits this endpoint was offered (s1cdmax above it is S_INVAL). */
  pasidBits: number;
}

/** A guest table bound to a domain: the walker plus its caches. */
export interface NestedTable {
  /** Translates; returns `true` and fills `out`, or `false` with `out.fault` and `out.event` set. */
  translate(pasid: number, iova: number, access: DmaAccess, out: NestedTranslation): boolean;
  /** Every step of one translation, without touching caches or statistics. */
  explain(pasid: number, iova: number, access: DmaAccess): TranslationStep[];
  invalidate(request: NestedInvalidation): void;
  /** Whether another ATTACH_TABLE payload describes this same table (endpoints then share it). */
  sameTable(payload: Uint8Array): boolean;
  /** The domain let go of the table. */
  release(): void;
}

/** A host-side backend for one virtio-iommu table format, registered by a vendor plugin. */
export interface NestedTableBackend {
  readonly vendor: string;
  /** How the format is offered to an endpoint. */
  describe(endpoint: number): NestedFormatDescription;
  /** Validates the ATTACH_TABLE payload (not the table contents) and binds it. */
  attach(request: NestedAttachRequest): NestedAttachResult;
}
