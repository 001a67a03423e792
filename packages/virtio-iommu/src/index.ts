// device (host side)
export { createVirtioIommuDevice, VirtioIommuDevice, VMMKIT_VENDOR_ID } from './device/device.js';
export type {
  AttachEvent,
  DetachEvent,
  DomainKind,
  FaultEvent,
  InvalidateEvent,
  MapEvent,
  UnmapEvent,
  VirtioIommuEvents,
} from './device/events.js';
export type { FaultStats } from './device/fault-reporter.js';
export type {
  EndpointOption,
  IommuFeatureOptions,
  ReservedRegionOption,
  VirtioIommuDeviceOptions,
} from './device/options.js';
export type {
  DmaAccessName,
  DmaFault,
  DmaSegment,
  DmaTranslation,
  TranslateRequest,
} from './device/translate-range.js';
export type { PageTranslation } from './device/translator.js';
export { createPageTranslation } from './device/translator.js';
// protocol
export {
  ATTACH_F_BYPASS,
  CONFIG_SIZE,
  ConfigOffset,
  EventQueue,
  FAULT_REPORT_SIZE,
  FaultFlag,
  FaultReason,
  INVALIDATE_CACHES_MASK,
  INVALIDATE_FLAGS_MASK,
  InvalidateCache,
  InvalidateFlag,
  InvalidateGranularity,
  IommuFeature,
  MAP_FLAGS_MASK,
  MAX_REQUEST_SIZE,
  MapFlag,
  PROBE_HEADER_SIZE,
  PROBE_TYPE_MASK,
  ProbePropertySize,
  ProbeType,
  RequestQueue,
  RequestSize,
  RequestType,
  ResvMemSubtype,
  Status,
  statusName,
  TableFormat,
  VIRTIO_IOMMU_DEVICE_ID,
} from './protocol/constants.js';
export type { FaultReport } from './protocol/fault.js';
export { decodeFaultReport, encodeFaultReport, FaultOffset, writeFaultReport } from './protocol/fault.js';
export type { ProbeProperty, ReservedRegionSubtype } from './protocol/properties.js';
export {
  encodeProperties,
  parseProperties,
  propertySize,
  resvSubtype,
  writeProperty,
} from './protocol/properties.js';
export type {
  AttachRequest,
  AttachTableRequest,
  DetachRequest,
  InvalidateRequest,
  IommuRequest,
  MapRequest,
  ProbeRequest,
  UnmapRequest,
} from './protocol/requests.js';
export {
  AttachOffset,
  AttachTableOffset,
  DetachOffset,
  decodeRequest,
  encodeAttach,
  encodeAttachTable,
  encodeDetach,
  encodeInvalidate,
  encodeMap,
  encodeProbe,
  encodeUnmap,
  InvalidateOffset,
  MapOffset,
  ProbeOffset,
  UnmapOffset,
} from './protocol/requests.js';
export { hi32, joinU64, lo32, U64_MAX } from './protocol/u64.js';
