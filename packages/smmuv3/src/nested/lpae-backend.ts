/**
 * virtio-iommu table format 1 (`PGTF_ARM_LPAE`): one Arm LPAE stage-1 table, no PASIDs.
 *
 * Payload (PROTOCOL.md; offsets from the start of the payload = request offset − 16):
 * format le16 @0, asid le16 @2, reserved @4..7, tcr le64 @8 (TCR_EL1 layout), ttbr le64 @16,
 * mair le64 @24, zeros after. The backend turns TCR_EL1 into the CD an SMMU would use — the
 * host holds that CD, the guest only owns the page tables.
 */
import type {
  NestedAttachRequest,
  NestedAttachResult,
  NestedFormatDescription,
  NestedTableBackend,
} from '@vmmkit/core';
import { encodeCd } from '../codec/cd.js';
import { encodeSte, SteConfig } from '../codec/ste.js';
import { Smmuv3 } from '../model/smmuv3.js';
import { describeFormat, type NestedBackendOptions, resolveBackendOptions } from './options.js';
import { NESTED_SID, SmmuNestedTable } from './table.js';

export const PGTF_ARM_LPAE = 1;

const PAYLOAD_MIN = 32;
const TG0_SHIFT = [12, 16, 14, -1];

function inval(reason: string): NestedAttachResult {
  return { ok: false, status: 'inval', reason };
}

/** TCR_EL1 (Arm ARM D19.2) fields this backend reads, from its two 32-bit halves. */
function tcrFields(lo: number, hi: number) {
  return {
    t0sz: lo & 0x3f,
    epd0: ((lo >>> 7) & 1) === 1,
    irgn0: (lo >>> 8) & 3,
    orgn0: (lo >>> 10) & 3,
    sh0: (lo >>> 12) & 3,
    tg0: (lo >>> 14) & 3,
    t1sz: (lo >>> 16) & 0x3f,
    epd1: ((lo >>> 23) & 1) === 1,
    irgn1: (lo >>> 24) & 3,
    orgn1: (lo >>> 26) & 3,
    sh1: (lo >>> 28) & 3,
    tg1: (lo >>> 30) & 3,
    ips: hi & 7,
    tbi0: ((hi >>> 5) & 1) === 1,
    tbi1: ((hi >>> 6) & 1) === 1,
    ha: ((hi >>> 7) & 1) === 1,
    hd: ((hi >>> 8) & 1) === 1,
    hpd0: ((hi >>> 9) & 1) === 1,
    hpd1: ((hi >>> 10) & 1) === 1,
  };
}

export class ArmLpaeNestedBackend implements NestedTableBackend {
  readonly vendor = 'arm';
  private readonly options: Required<NestedBackendOptions>;

  constructor(options: NestedBackendOptions = {}) {
    this.options = resolveBackendOptions(options);
  }

  describe(_endpoint: number): NestedFormatDescription {
    return describeFormat(PGTF_ARM_LPAE, 'page-table', this.options);
  }

  attach(request: NestedAttachRequest): NestedAttachResult {
    const { payload, memory } = request;
    if (payload.length < PAYLOAD_MIN) return inval(`payload is ${payload.length} bytes, need ${PAYLOAD_MIN}`);
    const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
    if (view.getUint16(0, true) !== PGTF_ARM_LPAE) return inval('payload format is not 1');
    // PROTOCOL.md: reserved payload bytes (request 20..23 and 48..83) must be zero.
    for (let i = 4; i < payload.length; i++) {
      if ((i < 8 || i >= PAYLOAD_MIN) && payload[i] !== 0) {
        return inval(`reserved payload byte ${i + 16} is not zero`);
      }
    }
    const asid = view.getUint16(2, true);
    if (this.options.features.asid16 === false && asid > 0xff) return inval(`asid ${asid} exceeds 8 bits`);
    const tcr = tcrFields(view.getUint32(8, true), view.getUint32(12, true));
    const g = TG0_SHIFT[tcr.tg0]!;
    // TCR values this SMMU cannot honour are payload errors: a reserved granule, a T0SZ outside
    // 16..39, a reserved IPS, hardware AF/dirty updates (no HTTU offered in PROBE flags).
    if (g < 0) return inval('TCR.TG0 is reserved');
    if (tcr.t0sz < 16 || tcr.t0sz > 39) return inval(`TCR.T0SZ ${tcr.t0sz} is outside 16..39`);
    if (tcr.ips > 6) return inval('TCR.IPS is reserved');
    if (tcr.ha || tcr.hd) return inval('TCR.HA/HD need HTTU, which is not offered');
    const ttbrLo = view.getUint32(16, true);
    const ttbrHi = view.getUint32(20, true);
    const inputBits = 64 - tcr.t0sz;
    const stride = g - 3;
    const startShift = g + (Math.ceil((inputBits - g) / stride) - 1) * stride;
    const tableBytes = Math.max(8 * 2 ** (inputBits - startShift), 64);
    // TTBR: BADDR in [47:1] aligned to the start table (≥ 64 bytes); bits above 51 are not an address.
    if (ttbrHi >= 2 ** 20) return inval('ttbr has bits above 51 set');
    const ttbr = ttbrHi * 2 ** 32 + ttbrLo;
    if (ttbr % tableBytes !== 0)
      return inval(`ttbr 0x${ttbr.toString(16)} is not aligned to its ${tableBytes}-byte table`);
    // PROTOCOL.md: a table pointer outside guest RAM is S_FAULT.
    if (ttbr + tableBytes > 2 ** this.options.oas || !memory.isAccessible(ttbr, tableBytes)) {
      return {
        ok: false,
        status: 'fault',
        reason: `the table at 0x${ttbr.toString(16)} is not in guest RAM`,
      };
    }
    const cd = encodeCd({
      t0sz: tcr.t0sz,
      tg0: tcr.tg0,
      irgn0: tcr.irgn0,
      orgn0: tcr.orgn0,
      sh0: tcr.sh0,
      epd0: tcr.epd0,
      t1sz: tcr.t1sz,
      tg1: tcr.tg1,
      irgn1: tcr.irgn1,
      orgn1: tcr.orgn1,
      sh1: tcr.sh1,
      epd1: tcr.epd1,
      valid: true,
      ips: tcr.ips,
      tbi0: tcr.tbi0,
      tbi1: tcr.tbi1,
      aa64: true,
      r: true,
      a: true,
      aset: true,
      asid,
      had0: tcr.hpd0,
      had1: tcr.hpd1,
      ttb0: ttbr,
      mair: view.getBigUint64(24, true),
    });
    const smmu = new Smmuv3({ memory, oas: this.options.oas, ssidBits: 0, features: this.options.features });
    const ste = encodeSte({ valid: true, config: SteConfig.S1_TRANSLATE, s1cir: 1, s1cor: 1, s1csh: 3 });
    smmu.setStreamConfig(NESTED_SID, ste, { cd });
    return { ok: true, table: new SmmuNestedTable(smmu, payload.slice(), false) };
  }
}
