import { createNestedTranslation, DmaAccess, NO_PASID } from '@vmmkit/core';
import { FaultFlag, FaultReason, MapFlag } from '../protocol/constants.js';
import { joinU64, TWO_POW_32 } from '../protocol/u64.js';
import type { Endpoint } from './domains.js';
import type { FaultReporter } from './fault-reporter.js';
import type { IommuState } from './iommu-state.js';
import { le64 } from './mapping-store.js';

/**
 * Result of one page translation, filled in place (one per caller, reused: no allocation).
 * On success `pa` is the guest-physical address (`-1` when it is 2^53 or above; `paLo`/`paHi`
 * are always exact) and `length` the bytes from the IOVA to the end of what this translation
 * covers (mapping, table page or region; at most 2^52). On a fault `reason` and `flags` hold
 * the fault report's fields.
 */
export interface PageTranslation {
  pa: number;
  paLo: number;
  paHi: number;
  length: number;
  /** The mapping was made with MAP_F_MMIO (device memory). */
  mmio: boolean;
  reason: number;
  flags: number;
  /** The vendor's fault record of a nested walk, or `null`. */
  vendorEvent: unknown;
}

export function createPageTranslation(): PageTranslation {
  return { pa: 0, paLo: 0, paHi: 0, length: 0, mmio: false, reason: 0, flags: 0, vendorEvent: null };
}

const MAX_LENGTH = 2 ** 52;
const TWO_POW_20 = 2 ** 20;
const PAGE_SIZE = 0x1000;

/** virtio 1.2 §5.13.6.5: writes need MAP_F_WRITE; reads (and instruction fetches) MAP_F_READ. */
function neededFlag(access: number): number {
  return access === DmaAccess.WRITE ? MapFlag.WRITE : MapFlag.READ;
}

/** `hi * 2^32 + lo + 1` capped at 2^52: the byte count of an inclusive 64-bit span. */
function spanLength(lo: number, hi: number): number {
  return hi >= 0x10_0000 ? MAX_LENGTH : Math.min(MAX_LENGTH, hi * TWO_POW_32 + lo + 1);
}

/**
 * Translation of a DMA by endpoint E with optional PASID P at address A, in PROTOCOL.md's order:
 * unattached → bypass or fault; reserved regions; table domains through the vendor walker;
 * MAP/UNMAP domains through the mapping tree with the upstream permission check.
 */
export class Translator {
  private readonly nestedOut = createNestedTranslation();
  /** What `translatePages` translates into. */
  private readonly ahead = createPageTranslation();
  /**
   * The endpoint of the previous translation: a device translates for one endpoint page after
   * page. Safe to keep because a device's endpoints are fixed when it is created (IommuState).
   */
  private lastEndpointId = -1;
  private lastEndpoint: Endpoint | undefined = undefined;

  constructor(
    private readonly state: IommuState,
    private readonly faults: FaultReporter,
  ) {}

  /**
   * Translates the address (`lo`, `hi` halves) for `access` (DmaAccess). Returns `true` with `out`
   * filled, or `false` after reporting the fault on the event queue (when `report`).
   */
  translate(
    endpointId: number,
    pasid: number,
    lo: number,
    hi: number,
    access: number,
    out: PageTranslation,
    report = true,
  ): boolean {
    const state = this.state;
    out.mmio = false;
    out.vendorEvent = null;
    const need = neededFlag(access);
    if (
      pasid === NO_PASID &&
      state.pageCache.lookup(endpointId, hi * TWO_POW_20 + (lo >>> 12), lo & 0xfff, need, out)
    ) {
      return true;
    }
    let endpoint: Endpoint | undefined;
    if (endpointId === this.lastEndpointId) endpoint = this.lastEndpoint;
    else {
      endpoint = state.endpoints.get(endpointId);
      this.lastEndpointId = endpointId;
      this.lastEndpoint = endpoint;
    }
    const domain = endpoint === undefined ? null : endpoint.domain;
    // PROTOCOL.md step 1 (virtio 1.2 §5.13.5 bypass rules): unknown or unattached endpoints
    // pass through only in bypass mode.
    if (domain === null) {
      if (state.unattachedBypass()) return identity(lo, hi, 0xffff_ffff, 0xffff_ffff, out);
      const reason = endpoint === undefined ? FaultReason.UNKNOWN : FaultReason.DOMAIN;
      return this.fault(endpointId, pasid, lo, hi, access, reason, 0, out, report);
    }
    // PROTOCOL.md step 2: MSI regions are identity-mapped, RESERVED ones fault.
    const region = endpoint!.regionAt(lo, hi);
    if (region >= 0) {
      if (endpoint!.regionMsi[region] === 1) {
        const b = endpoint!.regionBounds;
        return identity(lo, hi, b[region * 4 + 2]!, b[region * 4 + 3]!, out);
      }
      return this.fault(endpointId, pasid, lo, hi, access, FaultReason.MAPPING, 0, out, report);
    }
    if (domain.kind === 'bypass') return identity(lo, hi, 0xffff_ffff, 0xffff_ffff, out);
    const table = domain.table;
    if (table !== null) {
      // PROTOCOL.md step 3: the vendor walker reads the guest's tables (s1dss decides for no PASID).
      if (hi >= 0x20_0000) {
        return this.fault(endpointId, pasid, lo, hi, access, FaultReason.OOR_ADDRESS, 0, out, report);
      }
      const iova = hi * TWO_POW_32 + lo;
      const n = this.nestedOut;
      let ok: boolean;
      try {
        ok = table.translate(pasid, iova, access as DmaAccess, n);
      } catch {
        ok = false;
        n.fault = FaultReason.UNKNOWN;
        n.event = null;
      }
      if (!ok) {
        out.vendorEvent = n.event;
        return this.fault(endpointId, pasid, lo, hi, access, n.fault, 0, out, report);
      }
      const size = n.pageSize > 0 ? n.pageSize : 1;
      out.pa = n.pa;
      out.paLo = n.pa >>> 0;
      out.paHi = Math.floor(n.pa / TWO_POW_32);
      out.length = size - (iova % size);
      return true;
    }
    // PROTOCOL.md step 4: a MAP/UNMAP domain has no PASIDs.
    if (pasid !== NO_PASID) {
      return this.fault(endpointId, pasid, lo, hi, access, FaultReason.UNKNOWN, 0, out, report);
    }
    const slot = domain.mappings!.lookup(lo, hi);
    // virtio 1.2 §5.13.7: no mapping → R_MAPPING.
    if (slot < 0) return this.fault(endpointId, pasid, lo, hi, access, FaultReason.MAPPING, 0, out, report);
    const pool = state.pool;
    const flags = pool.flags[slot]!;
    if ((flags & need) === 0)
      return this.fault(endpointId, pasid, lo, hi, access, FaultReason.MAPPING, 0, out, report);
    // pa = phys_start + (iova - virt_start), in 32-bit halves; MAP checked it cannot pass 2^64.
    const sLo = pool.startLo[slot]!;
    const borrow = lo < sLo ? 1 : 0;
    const offLo = (lo - sLo) >>> 0;
    const offHi = (hi - pool.startHi[slot]! - borrow) >>> 0;
    const sumLo = pool.physLo[slot]! + offLo;
    const paLo = sumLo >>> 0;
    const paHi = (pool.physHi[slot]! + offHi + (sumLo > 0xffff_ffff ? 1 : 0)) >>> 0;
    out.paLo = paLo;
    out.paHi = paHi;
    out.pa = paHi < 0x20_0000 ? paHi * TWO_POW_32 + paLo : -1;
    const eLo = pool.endLo[slot]!;
    const endBorrow = eLo < lo ? 1 : 0;
    out.length = spanLength((eLo - lo) >>> 0, (pool.endHi[slot]! - hi - endBorrow) >>> 0);
    out.mmio = (flags & MapFlag.MMIO) !== 0;
    if (out.pa >= 0) this.remember(endpointId, slot, lo, hi, flags, out);
    return true;
  }

  /**
   * Caches the page of a MAP/UNMAP translation when the mapping covers the whole page. No
   * reserved region can share such a page: MAP refuses ranges over a region of an attached
   * endpoint (virtio 1.2 §5.13.6.8.2.2), ATTACH refuses domains with such mappings (§5.13.6.3.2).
   */
  private remember(
    endpointId: number,
    slot: number,
    lo: number,
    hi: number,
    flags: number,
    out: PageTranslation,
  ) {
    const pool = this.state.pool;
    const offset = lo & 0xfff;
    const pageLo = lo - offset;
    if (
      le64(pool.startLo[slot]!, pool.startHi[slot]!, pageLo, hi) &&
      le64(pageLo + 0xfff, hi, pool.endLo[slot]!, pool.endHi[slot]!)
    ) {
      const page = hi * TWO_POW_20 + (lo >>> 12);
      this.state.pageCache.insert(endpointId, page, out.pa - offset, out.length + offset, flags);
    }
  }

  /**
   * `translate` for byte 0 of IOVA page `page` (IOVA / 4096, exact for every 64-bit IOVA): what a
   * DMA engine asks page after page, answered from the page cache without splitting the address.
   */
  translatePage(
    endpointId: number,
    pasid: number,
    page: number,
    access: number,
    out: PageTranslation,
  ): boolean {
    const need = neededFlag(access);
    if (pasid === NO_PASID && this.state.pageCache.lookup(endpointId, page, 0, need, out)) {
      out.vendorEvent = null;
      return true;
    }
    const hi = Math.floor(page / TWO_POW_20);
    return this.translate(endpointId, pasid, (page - hi * TWO_POW_20) * PAGE_SIZE, hi, access, out);
  }

  /**
   * Translates up to `count` consecutive IOVA pages from `firstPage` into `pas[0..]` (the
   * address of each page's byte 0) and returns how many translated, stopping at the first that
   * does not, is not one translation over all its 4 KiB, or lies at 2^53 or above. Reports no
   * fault: the caller asks for that page again with `translatePage` when it gets there, so
   * faults reach the guest in the order a device meets them, and a page never used is never
   * reported. Translating ahead is what an IOTLB prefetch does; no translation here has a side
   * effect beyond the caches.
   */
  translatePages(
    endpointId: number,
    pasid: number,
    firstPage: number,
    count: number,
    access: number,
    pas: Float64Array,
  ): number {
    const need = neededFlag(access);
    const cache = this.state.pageCache;
    const out = this.ahead;
    let i = 0;
    while (i < count) {
      if (pasid === NO_PASID) {
        i += cache.copyRun(endpointId, firstPage + i, count - i, need, pas, i);
        if (i === count) break;
      }
      const page = firstPage + i;
      const hi = Math.floor(page / TWO_POW_20);
      const lo = (page - hi * TWO_POW_20) * PAGE_SIZE;
      const ok = this.translate(endpointId, pasid, lo, hi, access, out, false);
      // A page that is not one translation from its first byte to its last (a mapping finer
      // than 4 KiB ends in it) is for the caller to look at alone.
      if (!ok || out.pa < 0 || out.length < PAGE_SIZE) return i;
      pas[i++] = out.pa;
    }
    return count;
  }

  private fault(
    endpoint: number,
    pasid: number,
    lo: number,
    hi: number,
    access: number,
    reason: number,
    extraFlags: number,
    out: PageTranslation,
    report: boolean,
  ): false {
    const state = this.state;
    let flags =
      extraFlags |
      FaultFlag.ADDRESS |
      (access === DmaAccess.WRITE
        ? FaultFlag.WRITE
        : access === DmaAccess.EXEC
          ? FaultFlag.EXEC
          : FaultFlag.READ);
    // PROTOCOL.md: with the extension negotiated, the PASID travels at offset 12 under bit 9, and
    // the extra reasons 3-7 may be used; an unextended driver only knows 0-2.
    const withPasid = state.nestedOn && pasid !== NO_PASID;
    if (withPasid) flags |= FaultFlag.PASID;
    const wireReason = state.nestedOn || reason <= FaultReason.MAPPING ? reason : FaultReason.UNKNOWN;
    out.reason = wireReason;
    out.flags = flags;
    if (!report) return false;
    const delivered = this.faults.report(wireReason, flags, endpoint, withPasid ? pasid : 0, lo, hi);
    if (state.emitter.listenerCount('fault') > 0) {
      const event = {
        reason: wireReason,
        flags,
        endpoint,
        address: joinU64(lo, hi),
        delivered,
        ...(pasid !== NO_PASID ? { pasid } : {}),
        ...(out.vendorEvent !== null ? { vendorEvent: out.vendorEvent } : {}),
      };
      state.emitter.emit('fault', event);
    }
    return false;
  }
}

function identity(lo: number, hi: number, endLo: number, endHi: number, out: PageTranslation): true {
  out.paLo = lo;
  out.paHi = hi;
  out.pa = hi < 0x20_0000 ? hi * TWO_POW_32 + lo : -1;
  const borrow = endLo < lo ? 1 : 0;
  out.length = spanLength((endLo - lo) >>> 0, (endHi - hi - borrow) >>> 0);
  return true;
}
