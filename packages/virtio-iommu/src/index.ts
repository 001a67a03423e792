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
// driver (guest side)
export type { BatchLimits, InvalidateArgs, MappingObserver } from './driver/batch.js';
export { IommuBatch } from './driver/batch.js';
export { BatchResult } from './driver/batch-result.js';
export type { IommuConfig, IommuFeatures } from './driver/config.js';
export { DRIVER_FEATURES, MAX_PROBE_SIZE } from './driver/config.js';
export type { DomainKind as DriverDomainKind } from './driver/domain-registry.js';
export type {
  EndpointInfo,
  ServiceSource,
  VirtioIommuDriverEvents,
  VirtioIommuDriverOptions,
} from './driver/driver.js';
export { mapFlags, VirtioIommuDriver } from './driver/driver.js';
export type { FaultReasonName, IgnoredEventReason, IommuFault } from './driver/fault-events.js';
export type { KeptMapping } from './driver/kept-mappings.js';
export type { PgtableGeometryOptions } from './driver/nested-common.js';
export type { InvalidationTarget } from './driver/nested-invalidation.js';
export type { AttachPasidTableOptions } from './driver/nested-pasid.js';
export { attachPasidTable, NestedPasidDomain } from './driver/nested-pasid.js';
export type { AttachPageTableOptions } from './driver/nested-pgtable.js';
export { attachPageTable, NestedPageTableDomain } from './driver/nested-pgtable.js';
export type {
  EndpointProbe,
  ProbeGeometry,
  ProbeGeometryDefaults,
  ReservedRegion,
  SkippedProperty,
  TableFormatOffer,
} from './driver/probe-parser.js';
export { describeTableFormats, MAX_PASID_BITS, parseProbeProperties } from './driver/probe-parser.js';
export type { RequestDescription } from './driver/request-error.js';
export { STATUS_NOT_WRITTEN, VirtioIommuRequestError } from './driver/request-error.js';
export type { CompletionWait } from './driver/request-ring.js';
export { DEFAULT_MAX_WAITS, DEFAULT_WAIT_TIMEOUT_MS, SLOT_SIZE } from './driver/request-ring.js';
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
export { writeInvalidateRequest, writeMapRequest, writeUnmapRequest } from './protocol/request-writers.js';
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
