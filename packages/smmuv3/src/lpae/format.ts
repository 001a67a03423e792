/**
 * The `arm-lpae-s1` io-pgtable format (Linux `ARM_64_LPAE_S1`): allocation, and the description
 * of a table to a paravirtual IOMMU (virtio-iommu ATTACH_TABLE format 1, docs/PROTOCOL.md).
 */
import { hex, type IoPgtableCfg, type IoPgtableFormat, VmmError } from '@vmmkit/core';
import {
  type ArmLpaeS1Cfg,
  type ArmLpaeS1Tcr,
  chooseGranule,
  LPAE_DEFAULT_MAIR,
  LPAE_MAX_ADDR_BITS,
  LPAE_MIN_IAS,
  LpaeGeometry,
  lpaeS1Tcr,
  pgsizesOf,
} from './geometry.js';
import { ArmLpaeS1Pgtable } from './pgtable.js';
import { PgsizeSplitter } from './split.js';

declare module '@vmmkit/core' {
  interface IoPgtableVendorConfigs {
    arm: ArmLpaeS1Cfg;
  }
}

/** virtio-iommu table format number of a single Arm LPAE stage-1 table. */
export const PGTF_ARM_LPAE = 1;
/** Bytes 16..83 of ATTACH_TABLE: the le16 format, then its payload. */
export const ATTACH_PAYLOAD_SIZE = 68;

/** TCR_EL1 bit positions (Arm ARM D19.2 TCR_EL1): TT0 fields, EPD1 at 23, IPS at [34:32]. */
const TCR_EL1_EPD1 = 1 << 23;

/**
 * The TT0 fields in TCR_EL1 layout (T0SZ [5:0], IRGN0 [9:8], ORGN0 [11:10], SH0 [13:12],
 * TG0 [15:14], EPD1 [23] set so TTB1 is never walked, IPS [34:32]).
 */
export function encodeArmLpaeTcrEl1(tcr: ArmLpaeS1Tcr): bigint {
  const lo = tcr.tsz | (tcr.irgn << 8) | (tcr.orgn << 10) | (tcr.sh << 12) | (tcr.tg << 14) | TCR_EL1_EPD1;
  return (BigInt(tcr.ips) << 32n) | BigInt(lo >>> 0);
}

/**
 * Everything `alloc` derives from the requested geometry alone (page sizes, ias, oas, coherent
 * walk): the same for every table of an endpoint, so a PASID table of a thousand io-pgtables
 * computes it once. Immutable once built; each table gets its own copy of what it exposes.
 */
class LpaeS1Plan {
  readonly ias: number;
  readonly oas: number;
  readonly granule: number;
  readonly geometry: LpaeGeometry;
  readonly tcr: Readonly<ArmLpaeS1Tcr>;
  readonly pgsizeBitmap: number;
  /** Shared by the tables of this plan: splitting keeps no state between calls. */
  readonly splitter: PgsizeSplitter;

  constructor(
    readonly requestedPgsizes: number,
    readonly requestedIas: number,
    readonly requestedOas: number,
    readonly coherentWalk: boolean,
  ) {
    if (
      !Number.isInteger(requestedIas) ||
      !Number.isInteger(requestedOas) ||
      requestedIas <= 0 ||
      requestedOas <= 0
    ) {
      throw new VmmError(
        'EINVAL',
        `ias (${requestedIas}) and oas (${requestedOas}) must be positive integers of bits`,
      );
    }
    const { granule, pgsizeBitmap } = chooseGranule(requestedPgsizes);
    if (granule === 0) {
      throw new VmmError(
        'EINVAL',
        `pgsizeBitmap ${hex(requestedPgsizes)} offers no 4K, 16K or 64K granule usable by arm-lpae-s1`,
        { pgsizeBitmap: requestedPgsizes },
      );
    }
    // Linux clamps both sizes to what the granule can describe.
    const ias = Math.min(requestedIas, LPAE_MAX_ADDR_BITS);
    const oas = Math.min(requestedOas, LPAE_MAX_ADDR_BITS);
    if (ias < LPAE_MIN_IAS) {
      throw new VmmError(
        'EINVAL',
        `ias ${ias} would need CD.T0SZ ${64 - ias}; SMMUv3 accepts 16..39, so ias must be ${LPAE_MIN_IAS}..48`,
        { ias },
      );
    }
    const geometry = new LpaeGeometry(granule, ias);
    this.tcr = lpaeS1Tcr(geometry, ias, oas, coherentWalk);
    // Blocks above the start level cannot be described by this table.
    const pgsizes = pgsizesOf(pgsizeBitmap).filter((s) => geometry.levelOf(s) >= 0);
    this.ias = ias;
    this.oas = oas;
    this.granule = granule;
    this.geometry = geometry;
    this.pgsizeBitmap = pgsizes.reduce((a, s) => a + s, 0);
    this.splitter = new PgsizeSplitter(pgsizes);
  }

  matches(cfg: IoPgtableCfg): boolean {
    return (
      cfg.pgsizeBitmap === this.requestedPgsizes &&
      cfg.ias === this.requestedIas &&
      cfg.oas === this.requestedOas &&
      cfg.coherentWalk === this.coherentWalk
    );
  }
}

/** The plan of the last table allocated: tables are allocated in runs of one geometry. */
let lastPlan: LpaeS1Plan | null = null;

function planOf(cfg: IoPgtableCfg): LpaeS1Plan {
  const last = lastPlan;
  if (last?.matches(cfg)) return last;
  const plan = new LpaeS1Plan(cfg.pgsizeBitmap, cfg.ias, cfg.oas, cfg.coherentWalk);
  lastPlan = plan;
  return plan;
}

function allocArmLpaeS1(cfg: IoPgtableCfg): ArmLpaeS1Pgtable {
  if (!cfg.memory || !cfg.allocator || !cfg.tlb) {
    throw new VmmError('EINVAL', 'arm-lpae-s1 needs cfg.memory, cfg.allocator and cfg.tlb');
  }
  const plan = planOf(cfg);
  const { geometry, tcr } = plan;
  const pgd = cfg.allocator.alloc(geometry.pgdBytes, Math.max(geometry.pgdBytes, 0x1000));
  // Every entry starts invalid whatever the allocator left there (Linux: __GFP_ZERO pages);
  // an allocator that zeroes its pages has done it already.
  if (cfg.allocator.zeroesPages !== true) cfg.memory.fill(pgd, geometry.pgdBytes, 0);
  cfg.ias = plan.ias;
  cfg.oas = plan.oas;
  cfg.pgsizeBitmap = plan.pgsizeBitmap;
  cfg.vendor.arm = {
    ttbr: pgd,
    tcr: { tsz: tcr.tsz, tg: tcr.tg, irgn: tcr.irgn, orgn: tcr.orgn, sh: tcr.sh, ips: tcr.ips },
    mair: LPAE_DEFAULT_MAIR,
    granule: plan.granule,
    startLevel: geometry.startLevel,
    levels: geometry.levels,
  };
  return new ArmLpaeS1Pgtable(cfg, geometry, pgd, plan.splitter);
}

/** ATTACH_TABLE bytes 16..83 for format 1: le16 format, le16 asid, le64 TCR_EL1, le64 TTBR, le64 MAIR. */
function attachArmLpaeS1(cfg: IoPgtableCfg, asid: number): { format: number; payload: Uint8Array } {
  const arm = cfg.vendor.arm;
  if (!arm) {
    throw new VmmError('EINVAL', 'cfg.vendor.arm is missing: allocate the table with arm-lpae-s1 first');
  }
  if (!Number.isInteger(asid) || asid < 0 || asid > 0xffff) {
    throw new VmmError('ERANGE', `ASID ${asid} does not fit 16 bits`, { asid });
  }
  const payload = new Uint8Array(ATTACH_PAYLOAD_SIZE);
  const view = new DataView(payload.buffer);
  view.setUint16(0, PGTF_ARM_LPAE, true);
  view.setUint16(2, asid, true);
  view.setBigUint64(8, encodeArmLpaeTcrEl1(arm.tcr), true);
  view.setBigUint64(16, BigInt(arm.ttbr), true);
  view.setBigUint64(24, arm.mair, true);
  return { format: PGTF_ARM_LPAE, payload };
}

export const armLpaeS1Format: IoPgtableFormat = {
  name: 'arm-lpae-s1',
  vendor: 'arm',
  alloc: (cfg) => allocArmLpaeS1(cfg),
  attachDescriptor: attachArmLpaeS1,
  virtioIommuFormat: PGTF_ARM_LPAE,
};
