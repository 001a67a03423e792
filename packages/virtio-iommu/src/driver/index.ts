// The guest driver of virtio-iommu: what `src/index.ts` re-exports.
export type { BatchLimits, InvalidateArgs, MappingObserver } from './batch.js';
export { IommuBatch } from './batch.js';
export { BatchResult } from './batch-result.js';
export type { IommuConfig, IommuFeatures } from './config.js';
export { DRIVER_FEATURES, MAX_PROBE_SIZE } from './config.js';
export type { DomainKind } from './domain-registry.js';
export type {
  EndpointInfo,
  ServiceSource,
  VirtioIommuDriverEvents,
  VirtioIommuDriverOptions,
} from './driver.js';
export { mapFlags, VirtioIommuDriver } from './driver.js';
export type { FaultReasonName, IgnoredEventReason, IommuFault } from './fault-events.js';
export type { KeptMapping } from './kept-mappings.js';
export type { PgtableGeometryOptions } from './nested-common.js';
export type { InvalidationTarget } from './nested-invalidation.js';
export type { AttachPasidTableOptions } from './nested-pasid.js';
export { attachPasidTable, NestedPasidDomain } from './nested-pasid.js';
export type { AttachPageTableOptions } from './nested-pgtable.js';
export { attachPageTable, NestedPageTableDomain } from './nested-pgtable.js';
export type {
  EndpointProbe,
  ProbeGeometry,
  ProbeGeometryDefaults,
  ReservedRegion,
  SkippedProperty,
  TableFormatOffer,
} from './probe-parser.js';
export { describeTableFormats, MAX_PASID_BITS, parseProbeProperties } from './probe-parser.js';
export type { RequestDescription } from './request-error.js';
export { STATUS_NOT_WRITTEN, VirtioIommuRequestError } from './request-error.js';
export type { CompletionWait } from './request-ring.js';
export { DEFAULT_MAX_WAITS, DEFAULT_WAIT_TIMEOUT_MS, SLOT_SIZE } from './request-ring.js';
