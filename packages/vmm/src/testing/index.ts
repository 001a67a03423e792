export type { ScratchDeviceOptions } from './scratch-device.js';
export { SCRATCH_COMPATIBLE, SCRATCH_ID, ScratchReg, scratchDevice } from './scratch-device.js';
