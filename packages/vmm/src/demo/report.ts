/** What the demo guest is told (posted to the vCPU, so plain data only). */
export interface DemoArgs {
  iommu: 'virtio' | 'none';
  nested: NestedChoice;
  pasids: number;
  /** Plugin module URLs the guest loads too: guest drivers need the vendors' table code. */
  pluginModules: string[];
  /** Bytes each DMA moves. */
  transferBytes: number;
  /** Leave the IOMMU set up when the program ends (`vmm explain` walks the tables afterwards). */
  keepAttached: boolean;
}

/** How the guest gives the IOMMU its tables (`--nested`). */
export type NestedChoice =
  | { kind: 'off' }
  | { kind: 'pasid-table'; pasidTableFormat: string; pgtableFormat: string }
  | { kind: 'page-table'; pgtableFormat: string };

/** One DMA of the demo and how it was checked. */
export interface DemoTransfer {
  /** PASID used, or null for a transaction without PASID. */
  pasid: number | null;
  srcIova: number;
  dstIova: number;
  bytes: number;
  ok: boolean;
  /** Destination bytes equal the source bytes (read back from guest RAM by the guest). */
  verified: boolean;
  /** The engine's CRC-32 of the destination equals the guest's own CRC-32 of the pattern. */
  checksumVerified: boolean;
  crc32: number;
  error: string;
}

/** The deliberate fault and how it came back. */
export interface DemoFault {
  pasid: number | null;
  iova: number;
  /** What the DMA engine reported. */
  engineError: string;
  faultIova: number | null;
  /** The IOMMU's fault report as the guest driver received it from the event queue, if any. */
  report: {
    reason: string;
    endpoint: number;
    pasid: number | null;
    address: number | null;
    flags: number;
  } | null;
}

/** What the demo guest returns. */
export interface DemoReport {
  iommu: 'virtio' | 'none';
  nested: string;
  endpoint: number;
  /** How the IOMMU was set up, step by step, for the summary. */
  setup: string[];
  transfers: DemoTransfer[];
  fault: DemoFault | null;
}
