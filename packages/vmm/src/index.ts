export type { MmioBusStats, MmioSize } from './bus/mmio-bus.js';
export { MmioBus } from './bus/mmio-bus.js';
export type { DeviceContext, DeviceInstance, DeviceSpec, MemoryChange, PlacedDevice } from './devices.js';
export type { DmaJob, DmaOutcome } from './dma/dma-driver.js';
export { DmaEngineDriver } from './dma/dma-driver.js';
export type { DmaEngineOptions, DmaEngineStats } from './dma/dma-engine.js';
export { DmaEngine, dmaEngine } from './dma/dma-engine.js';
export {
  DMA_COMPATIBLE,
  DMA_MAGIC,
  DMA_MAX_LENGTH,
  DMA_PASID_VALID,
  DMA_WINDOW_SIZE,
  DmaError,
  DmaIrq,
  DmaOp,
  DmaReg,
  DmaStatus,
} from './dma/registers.js';
export type { DmaPage, DmaTranslator } from './dma/translator.js';
export { createDmaPage, DMA_PAGE_SIZE, identityTranslator } from './dma/translator.js';
export { InterruptLines, InterruptWaiter } from './irq/interrupt-lines.js';
export type { MemorySpec, RamBankSpec } from './memory-map.js';
export { DEFAULT_MMIO_BASE, DEFAULT_RAM_BASE } from './memory-map.js';
export type { GuestProgram } from './vcpu/boot.js';
export { ExitChannel, type MmioPort } from './vcpu/exit-channel.js';
export { DEFAULT_SPIN } from './vcpu/exit-protocol.js';
export { ExitServer } from './vcpu/exit-server.js';
export type { DeviceNode, GuestMain, GuestRuntime, VcpuMode, VirtioMmioProbe } from './vcpu/guest-runtime.js';
export { GuestMmio, VIRTIO_MMIO_MAGIC } from './vcpu/guest-runtime.js';
export { workerEntry } from './vcpu/source-loader.js';
export type { VcpuOutcome } from './vcpu/vcpu-error.js';
export { VcpuError } from './vcpu/vcpu-error.js';
export type { VirtioIommuSpec, VirtioIommuSpecOptions } from './virtio/virtio-iommu-device.js';
export { virtioIommu, virtioIommuTranslator } from './virtio/virtio-iommu-device.js';
export type { VirtioMmioDeviceOptions } from './virtio/virtio-mmio-device.js';
export { VIRTIO_MMIO_COMPATIBLE, VIRTIO_MMIO_WINDOW, virtioMmioDevice } from './virtio/virtio-mmio-device.js';
export type { VmContext, VmEvents, VmOptions } from './vm.js';
export { createVm, Vm } from './vm.js';
