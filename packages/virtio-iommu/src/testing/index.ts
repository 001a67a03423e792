export type { FakeNestedBackend, FakeNestedBackendOptions } from './fake-nested-backend.js';
export { createFakeNestedBackend, fakeNestedPlugin } from './fake-nested-backend.js';
export type {
  HarnessEndpoint,
  HarnessGuest,
  HarnessTranslation,
  SubmitResult,
  VirtioIommuHarness,
  VirtioIommuHarnessOptions,
} from './harness.js';
export { createVirtioIommuHarness, HARNESS_MMIO_BASE, linuxDriverFeatures } from './harness.js';
export { mapUnmapWorkload } from './map-unmap-workload.js';
export { mappingFootprint, objectFootprint } from './mapping-footprint.js';
export type { ReferenceMapping } from './reference-mappings.js';
export { ReferenceMappings } from './reference-mappings.js';
export { POISON } from './request-arena.js';
export type { RequestOutcome } from './status.js';
export { requestStatus } from './status.js';
