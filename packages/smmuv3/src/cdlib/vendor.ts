/**
 * The `arm` PASID-table vendor: SMMUv3 Context Descriptor tables built by a guest driver, after
 * the 2021 cd-lib RFC (arm-smmu-v3-cd-lib.c) and today's Linux CD code.
 */
import {
  type IoPgtableCfg,
  type PasidTableCfg,
  type PasidTableSync,
  type PasidTableVendor,
  VmmError,
} from '@vmmkit/core';
import { type CdFields, encodeCdWords } from '../codec/cd.js';
import {
  allocCdTable,
  cdAddress,
  checkS1dss,
  checkSsid,
  freeCdTable,
  layoutOf,
  S1Dss,
  S1Fmt,
} from './layout.js';
import { type CdWriteKind, writeCdWordsSynced } from './writer.js';

/** virtio-iommu table format number of an SMMUv3 CD table (docs/PROTOCOL.md). */
export const PSTF_ARM_SMMU_V3 = 2;
const ATTACH_PAYLOAD_SIZE = 68;

/** What `prepare` builds and `write` installs: the full CD, valid. */
export type ArmCdContext = Partial<CdFields>;

function asidBitsOf(cfg: PasidTableCfg): number {
  // SMMU_IDR0.ASID16 decides whether CD.ASID has 8 or 16 bits.
  const bits = cfg.iommuDev.features?.asidBits;
  return bits === 8 ? 8 : 16;
}

/** Linux `arm_smmu_make_s1_cd`: the CD of a DMA domain from its io-pgtable configuration. */
function prepareCd(cfg: PasidTableCfg, pgtableCfg: IoPgtableCfg, asid: number): ArmCdContext {
  const lpae = pgtableCfg.vendor.arm;
  if (!lpae) {
    throw new VmmError(
      'EINVAL',
      'prepare needs an io-pgtable allocated with the arm-lpae-s1 format (cfg.vendor.arm)',
    );
  }
  const asidBits = asidBitsOf(cfg);
  if (!Number.isInteger(asid) || asid < 0 || asid >= 1 << asidBits) {
    throw new VmmError(
      'ERANGE',
      `ASID ${String(asid)} does not fit the ${asidBits} ASID bits of ${cfg.iommuDev.name}`,
      {
        asid,
        asidBits,
      },
    );
  }
  const { tcr } = lpae;
  return {
    t0sz: tcr.tsz,
    tg0: tcr.tg,
    irgn0: tcr.irgn,
    orgn0: tcr.orgn,
    sh0: tcr.sh,
    // TTB1 is never used: stop speculative walks through it.
    epd1: true,
    valid: true,
    ips: tcr.ips,
    aa64: true,
    // Record faults and abort faulting transactions, as Linux does for every CD.
    r: true,
    a: true,
    // A private ASID: not shared with CPU TLB broadcasts (Linux clears it only for SVA).
    aset: true,
    asid,
    ttb0: lpae.ttbr,
    mair: lpae.mair,
  };
}

function syncOf(cfg: PasidTableCfg): PasidTableSync {
  const sync = cfg.sync;
  if (!sync) {
    throw new VmmError(
      'EINVAL',
      `no sync callback for the ${cfg.format} table of ${cfg.iommuDev.name}: a CD cannot be changed without invalidating the SMMU's copy; pass { sync } to registerPasidTable`,
    );
  }
  return sync;
}

/** CD dword 0 bit 31: V. */
const CD_V = 0x8000_0000;

/**
 * Encoded CDs waiting to be stored, one per nesting level: a sync runs the consumer's code, which
 * may write another CD before the outer write has stored all of its own.
 */
const targets: Uint32Array[] = [];
let writesInProgress = 0;

/** Installs, updates or clears (`ctx = null`) the CD of `ssid`; returns what the write had to do. */
export function writeArmCd(cfg: PasidTableCfg, ssid: number, ctx: ArmCdContext | null): CdWriteKind {
  const layout = layoutOf(cfg);
  checkSsid(cfg, layout, ssid);
  const sync = syncOf(cfg);
  writesInProgress++;
  try {
    let target: Uint32Array | null = null;
    if (ctx !== null) {
      let scratch = targets[writesInProgress - 1];
      if (scratch === undefined) {
        scratch = new Uint32Array(16);
        targets.push(scratch);
      }
      // Encoded before anything is written, so a bad field leaves the table untouched.
      target = encodeCdWords(ctx, scratch);
      target[0] = (target[0]! | CD_V) >>> 0;
    }
    const gpa =
      ctx === null || layout.s1fmt === S1Fmt.LINEAR
        ? cdAddress(cfg, layout, ssid)
        : // A fresh leaf is published in its L1 descriptor, whose old invalid copy may be cached.
          cdAddress(cfg, layout, ssid, () => sync(cfg.cookie, ssid, false));
    if (gpa === 0) return 'unchanged';
    return writeCdWordsSynced(cfg.iommuDev.memory, gpa, target, sync, cfg.cookie, ssid);
  } finally {
    writesInProgress--;
  }
}

/** ATTACH_TABLE bytes 16..83 for format 2: le16 format, s1fmt, s1dss, le32 s1cdmax, le64 s1contextptr. */
function attachArmCdTable(cfg: PasidTableCfg): { format: number; payload: Uint8Array } {
  const layout = layoutOf(cfg);
  const s1dss = cfg.vendor.arm?.s1dss ?? S1Dss.TERMINATE;
  checkS1dss(s1dss);
  const payload = new Uint8Array(ATTACH_PAYLOAD_SIZE);
  const view = new DataView(payload.buffer);
  view.setUint16(0, PSTF_ARM_SMMU_V3, true);
  view.setUint8(2, layout.s1fmt);
  view.setUint8(3, s1dss);
  view.setUint32(4, layout.s1cdmax, true);
  view.setBigUint64(8, BigInt(cfg.base), true);
  return { format: PSTF_ARM_SMMU_V3, payload };
}

export const armSmmuV3PasidVendor: PasidTableVendor<ArmCdContext> = {
  vendor: 'arm',
  format: 'arm-smmu-v3',
  ops: {
    alloc: allocCdTable,
    free: freeCdTable,
    prepare: prepareCd,
    write: (cfg, ssid, ctx) => {
      writeArmCd(cfg, ssid, ctx);
    },
  },
  attachDescriptor: attachArmCdTable,
  virtioIommuFormat: PSTF_ARM_SMMU_V3,
};
