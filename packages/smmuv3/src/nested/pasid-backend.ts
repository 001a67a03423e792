/**
 * virtio-iommu table format 2 (`PSTF_ARM_SMMU_V3`): the guest hands over its SMMUv3 CD table.
 *
 * Payload (PROTOCOL.md; offsets from the start of the payload = request offset − 16):
 * format le16 @0, s1fmt u8 @2, s1dss u8 @3, s1cdmax le32 @4, s1contextptr le64 @8, zeros after.
 * The backend checks the payload (not the table contents) and builds the STE a host SMMU would
 * hold for this stream, as Linux iommufd does from a guest vSTE (reference §8).
 */
import type {
  NestedAttachRequest,
  NestedAttachResult,
  NestedFormatDescription,
  NestedTableBackend,
} from '@vmmkit/core';
import { encodeSte, SteConfig } from '../codec/ste.js';
import { Smmuv3 } from '../model/smmuv3.js';
import { describeFormat, type NestedBackendOptions, resolveBackendOptions } from './options.js';
import { NESTED_SID, SmmuNestedTable } from './table.js';

export const PSTF_ARM_SMMU_V3 = 2;

const PAYLOAD_MIN = 16;

function inval(reason: string): NestedAttachResult {
  return { ok: false, status: 'inval', reason };
}

export class ArmSmmuV3PasidBackend implements NestedTableBackend {
  readonly vendor = 'arm';
  private readonly options: Required<NestedBackendOptions>;

  constructor(options: NestedBackendOptions = {}) {
    this.options = resolveBackendOptions(options);
  }

  describe(_endpoint: number): NestedFormatDescription {
    return describeFormat(PSTF_ARM_SMMU_V3, 'pasid-table', this.options);
  }

  attach(request: NestedAttachRequest): NestedAttachResult {
    const { payload, memory } = request;
    if (payload.length < PAYLOAD_MIN) return inval(`payload is ${payload.length} bytes, need ${PAYLOAD_MIN}`);
    const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
    if (view.getUint16(0, true) !== PSTF_ARM_SMMU_V3) return inval('payload format is not 2');
    // PROTOCOL.md: bytes after s1contextptr are reserved and must be zero.
    for (let i = PAYLOAD_MIN; i < payload.length; i++) {
      if (payload[i] !== 0) return inval(`reserved payload byte ${i + 16} is not zero`);
    }
    const s1fmt = payload[2]!;
    const s1dss = payload[3]!;
    const s1cdmax = view.getUint32(4, true);
    const ptrLo = view.getUint32(8, true);
    const ptrHi = view.getUint32(12, true);
    // PROTOCOL.md: s1fmt 0..2 (linear, 2-level 4K leaves, 2-level 64K leaves), s1dss 0..2.
    if (s1fmt > 2) return inval(`s1fmt ${s1fmt} is not 0, 1 or 2`);
    if (s1dss > 2) return inval(`s1dss ${s1dss} is not 0, 1 or 2`);
    // PROTOCOL.md: s1cdmax above the endpoint's PASID_SIZE is S_INVAL (and above this SMMU's SSIDSIZE).
    const pasidBits = Math.min(request.pasidBits, this.options.pasidBits);
    if (s1cdmax > pasidBits) return inval(`s1cdmax ${s1cdmax} exceeds the ${pasidBits} PASID bits offered`);
    if (s1fmt !== 0 && s1cdmax !== 0 && this.options.features.twoLevelCdTables === false) {
      return inval('two-level CD tables are not offered');
    }
    // STE.S1ContextPtr is bits [51:6] here (a 52-bit OAS at most).
    if (ptrHi >= 2 ** 20) return inval('s1contextptr must be below 2^52');
    const ptr = ptrHi * 2 ** 32 + ptrLo;
    const split = s1fmt === 1 ? 6 : 10;
    const tableBytes =
      s1cdmax === 0 ? 64 : s1fmt === 0 ? 64 * 2 ** s1cdmax : 8 * 2 ** Math.max(s1cdmax - split, 0);
    // IHI 0070 §5.2 S1Fmt: a linear table is aligned to its size, an L1 table to its size or 64
    // bytes, whichever is greater; a single CD to 64 bytes.
    const align = Math.max(tableBytes, 64);
    if (ptr % align !== 0) return inval(`s1contextptr must be aligned to ${align} bytes`);
    // PROTOCOL.md: a table pointer outside guest RAM is S_FAULT.
    if (ptr + tableBytes > 2 ** this.options.oas || !memory.isAccessible(ptr, tableBytes)) {
      return {
        ok: false,
        status: 'fault',
        reason: `the CD table at 0x${ptr.toString(16)} is not in guest RAM`,
      };
    }
    const smmu = new Smmuv3({
      memory,
      oas: this.options.oas,
      ssidBits: this.options.pasidBits,
      features: this.options.features,
    });
    const ste = encodeSte({
      valid: true,
      config: SteConfig.S1_TRANSLATE,
      s1fmt,
      s1cdmax,
      s1ContextPtr: ptr,
      s1dss,
      // CD and L1CD fetches: write-back read-allocate, inner shareable, as Linux programs them.
      s1cir: 1,
      s1cor: 1,
      s1csh: 3,
    });
    smmu.setStreamConfig(NESTED_SID, ste);
    return { ok: true, table: new SmmuNestedTable(smmu, payload.slice(), true) };
  }
}
