// host

// guest (lpae/, cdlib/)
export type { ArmCdTableCfg, ArmCdTableLayout } from './cdlib/layout.js';
export { S1Dss, S1Fmt } from './cdlib/layout.js';
export type { ArmCdContext } from './cdlib/vendor.js';
export { armSmmuV3PasidVendor, PSTF_ARM_SMMU_V3, writeArmCd } from './cdlib/vendor.js';
export type { CdWriteKind } from './cdlib/writer.js';
export type { CdFields } from './codec/cd.js';
export { CD_SIZE, CdTg0, CdTg1, decodeCd, emptyCdFields, encodeCd, IPS_BITS } from './codec/cd.js';
export type { CmdqCommand, TlbiRange, UnknownCommand } from './codec/command.js';
export { CMD_SIZE, CmdOpcode, decodeCommand, encodeCommand, SyncCs } from './codec/command.js';
export type { EventTypeName, SmmuEvent } from './codec/event.js';
export {
  decodeEvent,
  EVENT_SIZE,
  EventClass,
  EventType,
  encodeEvent,
  eventName,
  makeEvent,
} from './codec/event.js';
export type { L1CdDesc, L1StreamDesc } from './codec/l1.js';
export {
  decodeL1CdDesc,
  decodeL1StreamDesc,
  encodeL1CdDesc,
  encodeL1StreamDesc,
  L1_DESC_SIZE,
} from './codec/l1.js';
export type { SteFields } from './codec/ste.js';
export { decodeSte, encodeSte, STE_SIZE, SteConfig, SteS1Dss, SteS1Fmt } from './codec/ste.js';
export { armLpaeS1Format, encodeArmLpaeTcrEl1, PGTF_ARM_LPAE } from './lpae/format.js';
export type { ArmLpaeS1Cfg, ArmLpaeS1Tcr } from './lpae/geometry.js';
export { LPAE_DEFAULT_MAIR, MairIndex } from './lpae/geometry.js';
export { protToPte } from './lpae/pte.js';
export { Smmuv3 } from './model/smmuv3.js';
export type {
  CommandResult,
  DmaAccessName,
  Permissions,
  Smmuv3Features,
  Smmuv3Options,
  Smmuv3Stats,
  StreamTableConfig,
  TranslateRequest,
  TranslateResult,
  TranslationOut,
} from './model/types.js';
export { AccessCode, createTranslationOut } from './model/types.js';
export { ArmLpaeNestedBackend } from './nested/lpae-backend.js';
export type { NestedBackendOptions } from './nested/options.js';
export { ARM_LPAE_PAGE_SIZES } from './nested/options.js';
export { ArmSmmuV3PasidBackend } from './nested/pasid-backend.js';
export { faultReasonOf, NESTED_SID, SmmuNestedTable } from './nested/table.js';
export { createSmmuv3Plugin, smmuv3Plugin } from './plugin.js';
