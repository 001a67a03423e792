// host
export type { CdFields } from './codec/cd.js';
export { CD_SIZE, CdTg0, CdTg1, decodeCd, emptyCdFields, encodeCd, IPS_BITS } from './codec/cd.js';
