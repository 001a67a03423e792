export type { LifecycleHook } from './di/phases.js';
export { InitPhase, Lifecycle, phaseName, runInitPhases } from './di/phases.js';
export type { PluginRegistrar } from './di/plugin.js';
export { corePlugin, createContainer, definePlugin, lifecycleHooks, VmmPlugin } from './di/plugin.js';
export { TOKENS } from './di/tokens.js';
export { ErrorCode, hex, isVmmError, VmmError } from './errors.js';
export { TypedEmitter } from './events.js';
export type { BankDescriptor, BankKind, BankOptions } from './memory/bank.js';
export { BANK_ALIGN, MAX_GPA, MemoryBank } from './memory/bank.js';
export { fillBytes } from './memory/fill.js';
export type { AccessFault, GuestMemoryEvents, MemoryAccess } from './memory/guest-memory.js';
export { GuestMemory } from './memory/guest-memory.js';
export type { PageAllocator, PageRegion } from './memory/page-allocator.js';
export { BitmapPageAllocator, PAGE_SIZE } from './memory/page-allocator.js';
export type {
  NestedAttachRequest,
  NestedAttachResult,
  NestedFormatDescription,
  NestedInvalidation,
  NestedTable,
  NestedTableBackend,
  NestedTranslation,
  TranslationStep,
} from './nested/backend.js';
export { createNestedTranslation, DmaAccess, NestedFaultReason, NO_PASID } from './nested/backend.js';
export { NestedBackendRegistry } from './nested/registry.js';
export type { RegisterPasidTableOptions } from './pasid/library.js';
export { PasidTableLibrary } from './pasid/library.js';
export type {
  PasidTableCfg,
  PasidTableDevice,
  PasidTableOps,
  PasidTableSync,
  PasidTableVendor,
  PasidVendorConfigs,
} from './pasid/pasid-table.js';
export { PasidTable } from './pasid/pasid-table.js';
export type {
  IoPgtableCfg,
  IoPgtableFlushOps,
  IoPgtableFormat,
  IoPgtableOps,
  IoPgtableVendorConfigs,
  IotlbGather,
} from './pgtable/io-pgtable.js';
export { createIotlbGather, IommuProt } from './pgtable/io-pgtable.js';
export { IoPgtableRegistry } from './pgtable/registry.js';
export { DeviceQueue } from './virtio/device-queue.js';
export type { DriverQueueOptions } from './virtio/driver-queue.js';
export { DriverQueue } from './virtio/driver-queue.js';
export {
  isValidQueueSize,
  MAX_QUEUE_SIZE,
  needEvent,
  splitQueueBytes,
  splitQueueLayout,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
} from './virtio/layout.js';
export type { VirtioMmioInitOptions, VirtioMmioInitResult } from './virtio/mmio-driver.js';
export { VirtioMmioDriver } from './virtio/mmio-driver.js';
export {
  VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_VERSION,
  VirtioMmioInterrupt,
  VirtioMmioReg,
} from './virtio/mmio-registers.js';
export type { VirtioMmioTransportEvents, VirtioMmioTransportOptions } from './virtio/mmio-transport.js';
export { VirtioMmioTransport } from './virtio/mmio-transport.js';
export type {
  ChainErrorKind,
  DescriptorChain,
  DeviceQueueApi,
  DriverQueueApi,
  PopResult,
} from './virtio/queue-api.js';
export type {
  InterruptLine,
  MmioAccessor,
  MmioHandler,
  QueueFeatures,
  QueueLayout,
  Segment,
  VirtioActivation,
  VirtioDevice,
} from './virtio/types.js';
export { DeviceStatus, featureBit, VirtioFeature } from './virtio/types.js';
