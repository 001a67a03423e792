export type { FakeIommuFault, FakeIommuOptions } from './fake-iommu.js';
export { FakeIommu, FakePerm } from './fake-iommu.js';
export { PingPong } from './ping-pong.js';
export { resourcesLeftSince } from './resources.js';
export type { ScatteredDma } from './scattered-dma.js';
export { scatteredDma } from './scattered-dma.js';
export type { ScratchDeviceOptions } from './scratch-device.js';
export { SCRATCH_COMPATIBLE, SCRATCH_ID, ScratchReg, scratchDevice } from './scratch-device.js';
