// host
export type { CdFields } from './codec/cd.js';
export { CD_SIZE, CdTg0, CdTg1, decodeCd, emptyCdFields, encodeCd, IPS_BITS } from './codec/cd.js';
// guest (lpae/, cdlib/)
export { armLpaeS1Format, encodeArmLpaeTcrEl1, PGTF_ARM_LPAE } from './lpae/format.js';
export type { ArmLpaeS1Cfg, ArmLpaeS1Tcr } from './lpae/geometry.js';
export { LPAE_DEFAULT_MAIR, MairIndex } from './lpae/geometry.js';
export { protToPte } from './lpae/pte.js';
