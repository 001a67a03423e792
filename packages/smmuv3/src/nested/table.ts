/**
 * A guest table bound to a virtio-iommu domain, walked by an SMMUv3 model that holds the
 * stream configuration the backend built (one StreamID, 0, per table).
 *
 * SMMUv3 event → virtio-iommu fault reason (PROTOCOL.md "Fault reports"):
 *
 * | SMMUv3 event                                            | NestedFaultReason |
 * |---------------------------------------------------------|-------------------|
 * | F_TRANSLATION (invalid or reserved descriptor, IOVA out of range) | PTE_FETCH |
 * | F_ADDR_SIZE (output or table address beyond IPS/OAS)    | OOR_ADDRESS       |
 * | F_ACCESS (AF = 0, AFFD = 0)                             | ACCESS            |
 * | F_PERMISSION (AP, XN, APTable …)                        | PERMISSION        |
 * | F_WALK_EABT, F_CD_FETCH (a table outside guest RAM)      | WALK_EABT         |
 * | C_BAD_SUBSTREAMID, C_BAD_CD, C_BAD_STE, F_STREAM_DISABLED (S1DSS terminate), anything else | DOMAIN |
 *
 * The SMMUv3 event record itself goes into `out.event`.
 */
import {
  type DmaAccess,
  NestedFaultReason,
  type NestedInvalidation,
  type NestedTable,
  type NestedTranslation,
  type TranslationStep,
} from '@vmmkit/core';
import { encodeCommand } from '../codec/command.js';
import { EventType, makeEvent } from '../codec/event.js';
import type { Smmuv3 } from '../model/smmuv3.js';
import { createTranslationOut } from '../model/types.js';

/** The StreamID a nested table's stream configuration lives at. */
export const NESTED_SID = 0;

const MAX_SSID = 2 ** 20;

export function faultReasonOf(eventType: number): NestedFaultReason {
  switch (eventType) {
    case EventType.F_TRANSLATION:
      return NestedFaultReason.PTE_FETCH;
    case EventType.F_ADDR_SIZE:
      return NestedFaultReason.OOR_ADDRESS;
    case EventType.F_ACCESS:
      return NestedFaultReason.ACCESS;
    case EventType.F_PERMISSION:
      return NestedFaultReason.PERMISSION;
    case EventType.F_WALK_EABT:
    case EventType.F_CD_FETCH:
      return NestedFaultReason.WALK_EABT;
    default:
      return NestedFaultReason.DOMAIN;
  }
}

const ACCESS_NAMES = ['read', 'write', 'exec'] as const;

export class SmmuNestedTable implements NestedTable {
  private smmu: Smmuv3 | null;
  private readonly scratch = createTranslationOut();

  constructor(
    smmu: Smmuv3,
    /** The ATTACH_TABLE payload this table was built from (for `sameTable`). */
    private readonly payload: Uint8Array,
    /** Whether the format carries PASIDs (format 2) or is a single table (format 1). */
    private readonly withPasid: boolean,
  ) {
    this.smmu = smmu;
  }

  /** The model behind the table, for statistics and tests (null once released). */
  get model(): Smmuv3 | null {
    return this.smmu;
  }

  translate(pasid: number, iova: number, access: DmaAccess, out: NestedTranslation): boolean {
    const smmu = this.smmu;
    const ssid = pasid < 0 ? -1 : pasid;
    if (smmu === null || !(ssid < MAX_SSID) || !Number.isInteger(ssid) || access < 0 || access > 2) {
      // A released table, a PASID no SMMU can carry, or an unknown access: no usable context.
      out.fault = NestedFaultReason.DOMAIN;
      out.event = makeEvent(smmu === null ? EventType.C_BAD_STE : EventType.C_BAD_SUBSTREAMID, {
        sid: NESTED_SID,
        ssv: ssid >= 0,
        ssid: ssid >= 0 && ssid < MAX_SSID ? ssid : 0,
      });
      return false;
    }
    const r = this.scratch;
    if (smmu.translateInto(NESTED_SID, ssid, iova, access, r)) {
      out.pa = r.pa;
      out.pageSize = r.pageSize;
      out.perm = r.perm;
      out.fault = NestedFaultReason.UNKNOWN;
      out.event = null;
      return true;
    }
    out.fault = faultReasonOf(r.event!.type);
    out.event = r.event;
    return false;
  }

  explain(pasid: number, iova: number, access: DmaAccess): TranslationStep[] {
    const smmu = this.smmu;
    if (smmu === null) return [{ label: 'result', value: 'table released' }];
    const ssid = pasid < 0 ? undefined : pasid;
    const name = ACCESS_NAMES[access];
    if (name === undefined || (ssid !== undefined && !(Number.isInteger(ssid) && ssid < MAX_SSID))) {
      return [{ label: 'result', value: 'fault C_BAD_SUBSTREAMID', fields: { pasid, access } }];
    }
    if (!Number.isSafeInteger(iova) || iova < 0) {
      return [
        { label: 'result', value: 'fault F_TRANSLATION', fields: { reason: 'IOVA is not a safe integer' } },
      ];
    }
    return smmu.explain({ sid: NESTED_SID, ssid, iova, access: name });
  }

  /**
   * INVALIDATE → SMMUv3 maintenance:
   * - caches.pasid: PASID given → CFGI_CD(pasid, leaf); otherwise CFGI_CD_ALL.
   * - caches.iotlb, granularity domain/pasid: ARCHID given → TLBI_NH_ASID(archid); otherwise TLBI_NH_ALL.
   * - caches.iotlb, granularity va: TLBI_NH_VA(archid, range, leaf), or TLBI_NH_VAA without ARCHID,
   *   over [virt_start, virt_start + nr_pages · 2^granule).
   * - caches.devIotlb: no ATS here, nothing cached.
   * Invalidating more than asked is always allowed; less never happens.
   */
  invalidate(request: NestedInvalidation): void {
    const smmu = this.smmu;
    if (smmu === null) return;
    if (request.caches.pasid) {
      if (this.withPasid && request.pasid !== undefined && request.granularity !== 'domain') {
        if (request.pasid < MAX_SSID) {
          smmu.command(
            encodeCommand({ op: 'CFGI_CD', sid: NESTED_SID, ssid: request.pasid, leaf: request.leaf }),
          );
        }
      } else {
        smmu.command(encodeCommand({ op: 'CFGI_CD_ALL', sid: NESTED_SID }));
      }
    }
    if (!request.caches.iotlb) return;
    const asid = request.archid;
    // A 16-bit ASID field: an ARCHID wider than that names no cached entry of ours.
    if (asid !== undefined && asid > 0xffffn) return;
    if (request.granularity !== 'va') {
      if (asid === undefined) smmu.command(encodeCommand({ op: 'TLBI_NH_ALL', vmid: 0 }));
      else smmu.command(encodeCommand({ op: 'TLBI_NH_ASID', vmid: 0, asid: Number(asid) }));
      return;
    }
    const start = request.virtStart;
    const length = request.nrPages << BigInt(request.granule);
    // Cached IOVAs are below 2^53; clamp the range to what can overlap them.
    if (start >= 2n ** 53n || length === 0n) return;
    const end = start + length > 2n ** 53n ? 2n ** 53n : start + length;
    smmu.invalidateTlbRange(asid === undefined ? -1 : Number(asid), Number(start), Number(end - start));
  }

  sameTable(payload: Uint8Array): boolean {
    if (payload.length !== this.payload.length) return false;
    for (let i = 0; i < payload.length; i++) if (payload[i] !== this.payload[i]) return false;
    return true;
  }

  release(): void {
    this.smmu = null;
  }
}
