/**
 * Numbers of the virtio-iommu protocol: upstream virtio 1.2 §5.13 (Linux uapi
 * `virtio_iommu.h` v0.12) plus vmmkit's nested-extension profile (docs/PROTOCOL.md). Every
 * draft-specific number lives here so another profile could be added in one place.
 */

/** virtio device ID of the IOMMU (virtio 1.2 §5.13.1). */
export const VIRTIO_IOMMU_DEVICE_ID = 23;

/** Queue indexes (virtio 1.2 §5.13.2). */
export const RequestQueue = 0;
export const EventQueue = 1;

/** Device feature bits (virtio 1.2 §5.13.3; bit 8 is vmmkit's nested profile). */
export const IommuFeature = {
  INPUT_RANGE: 0,
  DOMAIN_RANGE: 1,
  MAP_UNMAP: 2,
  /** Legacy: unattached endpoints bypass once negotiated. New devices should not offer it. */
  BYPASS: 3,
  PROBE: 4,
  MMIO: 5,
  BYPASS_CONFIG: 6,
  /** Nested extension: ATTACH_TABLE and INVALIDATE (PROTOCOL.md). */
  ATTACH_TABLE: 8,
} as const;
export type IommuFeature = (typeof IommuFeature)[keyof typeof IommuFeature];

/** Request types (virtio 1.2 §5.13.6; 6 and 7 from the nested profile). */
export const RequestType = {
  ATTACH: 1,
  DETACH: 2,
  MAP: 3,
  UNMAP: 4,
  PROBE: 5,
  ATTACH_TABLE: 6,
  INVALIDATE: 7,
} as const;
export type RequestType = (typeof RequestType)[keyof typeof RequestType];

/** Request statuses (virtio 1.2 §5.13.6). */
export const Status = {
  OK: 0,
  IOERR: 1,
  UNSUPP: 2,
  DEVERR: 3,
  INVAL: 4,
  RANGE: 5,
  NOENT: 6,
  FAULT: 7,
  NOMEM: 8,
} as const;
export type Status = (typeof Status)[keyof typeof Status];

const statusNames = ['OK', 'IOERR', 'UNSUPP', 'DEVERR', 'INVAL', 'RANGE', 'NOENT', 'FAULT', 'NOMEM'] as const;

/** `S_INVAL`-style name of a status, or `S_<n>` for a number the spec does not define. */
export function statusName(status: number): string {
  const name = statusNames[status];
  return name === undefined ? `S_${status}` : `S_${name}`;
}

/** Bytes of every request's readable part and of the writable tail (virtio 1.2 §5.13.6.1-6, PROTOCOL.md). */
export const RequestSize = {
  HEAD: 4,
  TAIL: 4,
  ATTACH: 20,
  DETACH: 20,
  MAP: 36,
  UNMAP: 28,
  PROBE: 72,
  ATTACH_TABLE: 84,
  INVALIDATE: 60,
} as const;

/** The largest readable part the device parses; longer readable parts are ignored past it. */
export const MAX_REQUEST_SIZE = RequestSize.ATTACH_TABLE;

/** ATTACH flags (virtio 1.2 §5.13.6.3). */
export const ATTACH_F_BYPASS = 1;

/** MAP flags (virtio 1.2 §5.13.6.5). */
export const MapFlag = { READ: 1, WRITE: 2, MMIO: 4 } as const;
export const MAP_FLAGS_MASK = 0x7;

/** PROBE property types (virtio 1.2 §5.13.6.8; 2-7 from the nested profile). */
export const ProbeType = {
  NONE: 0,
  RESV_MEM: 1,
  PAGE_SIZE_MASK: 2,
  INPUT_RANGE: 3,
  OUTPUT_SIZE: 4,
  PASID_SIZE: 5,
  PAGE_TABLE_FMT: 6,
  PASID_TABLE_FMT: 7,
} as const;
export type ProbeType = (typeof ProbeType)[keyof typeof ProbeType];

/** Mask of the type bits of a property header; bits 15:12 are reserved (virtio 1.2 §5.13.6.8). */
export const PROBE_TYPE_MASK = 0xfff;
export const PROBE_HEADER_SIZE = 4;

/** Total property sizes (header included). */
export const ProbePropertySize = {
  RESV_MEM: 24,
  PAGE_SIZE_MASK: 16,
  INPUT_RANGE: 24,
  OUTPUT_SIZE: 8,
  PASID_SIZE: 8,
  TABLE_FMT: 16,
} as const;

/** RESV_MEM subtypes (virtio 1.2 §5.13.6.8.2). */
export const ResvMemSubtype = { RESERVED: 0, MSI: 1 } as const;

/** Nested table formats (PROTOCOL.md). */
export const TableFormat = { ARM_LPAE: 1, ARM_SMMU_V3: 2, VIRT: 3 } as const;

/** INVALIDATE fields (PROTOCOL.md). */
export const InvalidateGranularity = { DOMAIN: 1, PASID: 2, VA: 4 } as const;
export const InvalidateCache = { IOTLB: 1, DEV_IOTLB: 2, PASID: 4 } as const;
export const INVALIDATE_CACHES_MASK = 0x7;
export const InvalidateFlag = { PASID: 1, ARCHID: 2, LEAF: 4 } as const;
export const INVALIDATE_FLAGS_MASK = 0x7;

/** Fault reasons (virtio 1.2 §5.13.7; 3-7 from the nested profile). */
export const FaultReason = {
  UNKNOWN: 0,
  DOMAIN: 1,
  MAPPING: 2,
  WALK_EABT: 3,
  PTE_FETCH: 4,
  PERMISSION: 5,
  ACCESS: 6,
  OOR_ADDRESS: 7,
} as const;
export type FaultReason = (typeof FaultReason)[keyof typeof FaultReason];

/** Fault flags (virtio 1.2 §5.13.7, uapi EXEC; bit 9 PASID from the nested profile). */
export const FaultFlag = { READ: 1, WRITE: 2, EXEC: 4, ADDRESS: 0x100, PASID: 0x200 } as const;

/** Size of a fault report on the event queue. */
export const FAULT_REPORT_SIZE = 24;

/** Offsets in the configuration space (virtio 1.2 §5.13.4), 40 bytes. */
export const ConfigOffset = {
  PAGE_SIZE_MASK: 0x00,
  INPUT_START: 0x08,
  INPUT_END: 0x10,
  DOMAIN_START: 0x18,
  DOMAIN_END: 0x1c,
  PROBE_SIZE: 0x20,
  BYPASS: 0x24,
} as const;
export const CONFIG_SIZE = 40;
