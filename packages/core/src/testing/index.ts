export type { TestMemory, TestMemoryOptions } from './memory.js';
export { createTestMemory } from './memory.js';
export type { TestMmioBus } from './mmio-bus.js';
export { createMmioBus } from './mmio-bus.js';
export type { MockBuffer, RawDescriptor, UsedElement } from './mock-queue.js';
export { MockSplitQueue } from './mock-queue.js';
export type { TestVirtioDeviceOptions } from './test-device.js';
export { TestVirtioDevice } from './test-device.js';
export { startTypeScriptWorker } from './ts-worker.js';
