import type { TypedEmitter } from '@vmmkit/core';
import { ATTACH_F_BYPASS, IommuFeature, MAP_FLAGS_MASK, MapFlag, Status } from '../protocol/constants.js';
import { hi32, joinU64, lo32 } from '../protocol/u64.js';
import { Domain, type Endpoint } from './domains.js';
import type { DomainKind, VirtioIommuEvents } from './events.js';
import { le64, MappingPool } from './mapping-store.js';
import type { ResolvedOptions } from './options.js';
import { PageCache } from './page-cache.js';

/**
 * Domains, endpoints and mappings, and the upstream requests that change them (virtio 1.2
 * §5.13.6.3-6.6). Arguments arrive as numbers and 32-bit halves straight from the request
 * bytes; every guest-supplied value is checked here and answered with a status, never thrown.
 */
export class IommuState {
  readonly pool = new MappingPool();
  /** Told of every change that can undo a translation: UNMAP, an endpoint leaving, reset. */
  readonly pageCache = new PageCache();
  readonly endpoints = new Map<number, Endpoint>();
  readonly domains = new Map<number, Domain>();
  /** Features the driver accepted (device-specific bits). */
  negotiated = 0n;
  inputRangeOn = false;
  domainRangeOn = false;
  mmioOn = false;
  bypassConfigOn = false;
  legacyBypassOn = false;
  nestedOn = false;
  /** The `bypass` config field. */
  bypass: boolean;
  private readonly bypassConfigOffered: boolean;
  // Granule masks for alignment checks, as signed 32-bit halves (lowest set bit of page_size_mask).
  private alignLo = 0;
  private alignHi = 0;
  private inStartLo = 0;
  private inStartHi = 0;
  private inEndLo = 0;
  private inEndHi = 0;

  constructor(
    public options: ResolvedOptions,
    readonly emitter: TypedEmitter<VirtioIommuEvents>,
    endpoints: readonly Endpoint[],
  ) {
    for (const e of endpoints) this.endpoints.set(e.id, e);
    this.bypass = options.bypass;
    this.bypassConfigOffered = (options.offered & (1n << BigInt(IommuFeature.BYPASS_CONFIG))) !== 0n;
    this.setGeometry(options);
  }

  /** Takes new configuration values (the VMM may change them while no driver runs). */
  setGeometry(options: ResolvedOptions): void {
    this.options = options;
    const granule = options.pageSizeMask & -options.pageSizeMask;
    const mask = granule - 1n;
    this.alignLo = lo32(mask) | 0;
    this.alignHi = hi32(mask) | 0;
    this.inStartLo = lo32(options.inputStart);
    this.inStartHi = hi32(options.inputStart);
    this.inEndLo = lo32(options.inputEnd);
    this.inEndHi = hi32(options.inputEnd);
  }

  /** Records what the driver negotiated (FEATURES_OK). */
  setNegotiated(features: bigint): void {
    const has = (bit: number) => (features & (1n << BigInt(bit))) !== 0n;
    this.negotiated = features & 0xff_ffffn;
    this.inputRangeOn = has(IommuFeature.INPUT_RANGE);
    this.domainRangeOn = has(IommuFeature.DOMAIN_RANGE);
    this.mmioOn = has(IommuFeature.MMIO);
    this.bypassConfigOn = has(IommuFeature.BYPASS_CONFIG);
    this.legacyBypassOn = has(IommuFeature.BYPASS);
    this.nestedOn = has(IommuFeature.ATTACH_TABLE);
  }

  /** Whether an endpoint outside every domain passes through (virtio 1.2 §5.13.5, bypass rules). */
  unattachedBypass(): boolean {
    // "Offered", not "negotiated": the initial bypass also covers firmware that never negotiates.
    return (this.bypassConfigOffered && this.bypass) || this.legacyBypassOn;
  }

  domainInRange(domain: number): boolean {
    // virtio 1.2 §5.13.4: with F_DOMAIN_RANGE the driver MUST NOT use domains outside domain_range.
    return !this.domainRangeOn || (domain >= this.options.domainStart && domain <= this.options.domainEnd);
  }

  attach(domainId: number, endpointId: number, flags: number, reserved: number): Status {
    // virtio 1.2 §5.13.6.3.2: the device MUST reject a non-zero reserved field with S_INVAL.
    if (reserved !== 0) return Status.INVAL;
    // virtio 1.2 §5.13.6.3.2: unknown flags, and ATTACH_F_BYPASS without F_BYPASS_CONFIG, are S_INVAL.
    if ((flags & ~ATTACH_F_BYPASS) !== 0) return Status.INVAL;
    const wantBypass = (flags & ATTACH_F_BYPASS) !== 0;
    if (wantBypass && !this.bypassConfigOn) return Status.INVAL;
    if (!this.domainInRange(domainId)) return Status.RANGE;
    // virtio 1.2 §5.13.6.3.2: an endpoint the device does not know is S_NOENT.
    const endpoint = this.endpoints.get(endpointId);
    if (endpoint === undefined) return Status.NOENT;
    const kind: DomainKind = wantBypass ? 'bypass' : 'map';
    const existing = this.domains.get(domainId);
    if (existing !== undefined) {
      // A table domain is joined with ATTACH_TABLE only: its table was checked against that request.
      if (existing.kind === 'table') return Status.UNSUPP;
      // virtio 1.2 §5.13.6.3.2: a BYPASS flag inconsistent with the existing domain SHOULD be S_INVAL.
      if (existing.kind !== kind) return Status.INVAL;
      // Re-attaching to the same domain keeps it and its mappings (an idempotent S_OK).
      if (endpoint.domain === existing) return Status.OK;
      // virtio 1.2 §5.13.6.3.2: PROBE properties incompatible with the domain SHOULD be S_UNSUPP:
      // a mapping over one of the endpoint's reserved regions.
      if (existing.mappings !== null && this.mappingsOverlapRegions(existing, endpoint)) return Status.UNSUPP;
    } else if (!this.roomForDomain(endpoint)) {
      return Status.NOMEM;
    }
    this.moveEndpoint(endpoint, existing ?? this.createDomain(domainId, kind), existing === undefined);
    return Status.OK;
  }

  /** Whether one more domain fits once the endpoint's old domain (if it dies on the move) is gone. */
  roomForDomain(endpoint: Endpoint): boolean {
    const freed = endpoint.domain !== null && endpoint.domain.endpoints.length === 1 ? 1 : 0;
    return this.domains.size - freed < this.options.maxDomains;
  }

  createDomain(id: number, kind: DomainKind): Domain {
    return new Domain(id, kind, this.pool);
  }

  /** Detaches the endpoint from its old domain (implicitly, virtio 1.2 §5.13.6.3) and attaches it. */
  moveEndpoint(endpoint: Endpoint, domain: Domain, created: boolean): void {
    if (endpoint.domain !== null) this.detachEndpoint(endpoint, 'implicit');
    if (created) this.domains.set(domain.id, domain);
    domain.add(endpoint);
    if (this.emitter.listenerCount('attach') > 0) {
      const event = { domain: domain.id, endpoint: endpoint.id, kind: domain.kind, created };
      this.emitter.emit('attach', domain.kind === 'table' ? { ...event, format: domain.format } : event);
    }
  }

  detach(domainId: number, endpointId: number): Status {
    // virtio 1.2 §5.13.6.4: the reserved field is ignored. An unknown endpoint is S_NOENT.
    const endpoint = this.endpoints.get(endpointId);
    if (endpoint === undefined) return Status.NOENT;
    if (!this.domainInRange(domainId)) return Status.RANGE;
    // virtio 1.2 §5.13.6.4.2: an unknown domain or an endpoint not attached to it MAY be S_INVAL.
    if (endpoint.domain === null || endpoint.domain.id !== domainId) return Status.INVAL;
    this.detachEndpoint(endpoint, 'request');
    return Status.OK;
  }

  /** Removes the endpoint from its domain; the domain dies with its last endpoint (virtio 1.2 §5.13.6.4). */
  detachEndpoint(endpoint: Endpoint, cause: 'request' | 'implicit' | 'reset'): void {
    const domain = endpoint.domain!;
    // Every way a translation is lost passes here or through UNMAP (reset detaches each endpoint).
    this.pageCache.invalidate();
    const empty = domain.remove(endpoint);
    if (empty) {
      domain.destroy();
      this.domains.delete(domain.id);
    }
    if (this.emitter.listenerCount('detach') > 0) {
      this.emitter.emit('detach', { domain: domain.id, endpoint: endpoint.id, destroyed: empty, cause });
    }
  }

  map(
    domainId: number,
    sLo: number,
    sHi: number,
    eLo: number,
    eHi: number,
    pLo: number,
    pHi: number,
    flags: number,
  ): Status {
    // virtio 1.2 §5.13.6.5.2: unknown flags, and MAP_F_MMIO without F_MMIO, MUST be S_INVAL.
    if ((flags & ~MAP_FLAGS_MASK) !== 0 || ((flags & MapFlag.MMIO) !== 0 && !this.mmioOn))
      return Status.INVAL;
    if (!this.domainInRange(domainId)) return Status.RANGE;
    // virtio 1.2 §5.13.6.5.2: a domain that does not exist SHOULD be S_NOENT.
    const domain = this.domains.get(domainId);
    if (domain === undefined) return Status.NOENT;
    // virtio 1.2 §5.13.6.5.2: MAP on a bypass domain SHOULD be S_INVAL; PROTOCOL.md: so on a table domain.
    const tree = domain.mappings;
    if (tree === null) return Status.INVAL;
    // virtio 1.2 §5.13.6.5.1: virt_end MUST be strictly greater than virt_start.
    if (le64(eLo, eHi, sLo, sHi)) return Status.RANGE;
    // virtio 1.2 §5.13.4: with F_INPUT_RANGE, a mapping outside input_range fails (S_RANGE).
    if (
      this.inputRangeOn &&
      (!le64(this.inStartLo, this.inStartHi, sLo, sHi) || !le64(eLo, eHi, this.inEndLo, this.inEndHi))
    ) {
      return Status.RANGE;
    }
    // virtio 1.2 §5.13.6.5.2: virt_start, phys_start and virt_end + 1 not aligned to the
    // granule SHOULD be S_RANGE.
    const aLo = this.alignLo;
    const aHi = this.alignHi;
    if (
      (sLo & aLo) !== 0 ||
      (sHi & aHi) !== 0 ||
      (pLo & aLo) !== 0 ||
      (pHi & aHi) !== 0 ||
      (eLo & aLo) !== aLo ||
      (eHi & aHi) !== aHi
    ) {
      return Status.RANGE;
    }
    // The physical range must not wrap past 2^64 - 1: phys_start + (virt_end - virt_start).
    const borrow = eLo < sLo ? 1 : 0;
    const spanLo = (eLo - sLo) >>> 0;
    const spanHi = (eHi - sHi - borrow) >>> 0;
    const lastLo = pLo + spanLo;
    const lastHi = pHi + spanHi + (lastLo > 0xffff_ffff ? 1 : 0);
    if (lastHi > 0xffff_ffff) return Status.RANGE;
    // virtio 1.2 §5.13.6.5.2: a range overlapping an existing mapping SHOULD be S_INVAL.
    if (tree.overlaps(sLo, sHi, eLo, eHi)) return Status.INVAL;
    // virtio 1.2 §5.13.6.8.2.2: the device SHOULD reject MAPs over RESV_MEM regions (S_INVAL).
    if (domain.reservedOverlap(sLo, sHi, eLo, eHi)) return Status.INVAL;
    // Resource caps: S_NOMEM (virtio 1.2 §5.13.6: insufficient resources).
    if (tree.size >= this.options.maxMappingsPerDomain || this.pool.live >= this.options.maxMappings) {
      return Status.NOMEM;
    }
    tree.insert(this.pool.allocate(sLo, sHi, eLo, eHi, pLo, pHi, flags));
    if (this.emitter.listenerCount('map') > 0) {
      this.emitter.emit('map', {
        domain: domainId,
        virtStart: joinU64(sLo, sHi),
        virtEnd: joinU64(eLo, eHi),
        physStart: joinU64(pLo, pHi),
        flags,
      });
    }
    return Status.OK;
  }

  unmap(domainId: number, sLo: number, sHi: number, eLo: number, eHi: number, reserved: number): Status {
    // virtio 1.2 §5.13.6.6.2: a non-zero reserved field MAY be S_INVAL (and nothing is removed here).
    if (reserved !== 0) return Status.INVAL;
    if (!this.domainInRange(domainId)) return Status.RANGE;
    // virtio 1.2 §5.13.6.6.2: a domain that does not exist SHOULD be S_NOENT.
    const domain = this.domains.get(domainId);
    if (domain === undefined) return Status.NOENT;
    // virtio 1.2 §5.13.6.6.2: UNMAP on a bypass domain SHOULD be S_INVAL; PROTOCOL.md: so on a table domain.
    const tree = domain.mappings;
    if (tree === null) return Status.INVAL;
    if (!le64(sLo, sHi, eLo, eHi)) return Status.RANGE;
    const pool = this.pool;
    // virtio 1.2 §5.13.6.6.2: a mapping only partly covered would be split: S_RANGE and the
    // device SHOULD NOT remove any mapping. Only the mappings at either end can be partial.
    const first = tree.floor(sLo, sHi);
    if (
      first >= 0 &&
      (pool.startLo[first] !== sLo || pool.startHi[first] !== sHi) &&
      le64(sLo, sHi, pool.endLo[first]!, pool.endHi[first]!)
    ) {
      return Status.RANGE;
    }
    const last = tree.floor(eLo, eHi);
    if (last >= 0 && !le64(pool.endLo[last]!, pool.endHi[last]!, eLo, eHi)) return Status.RANGE;
    // Every mapping starting in [start, end] is now fully inside: remove them, highest first.
    // Bounded by the domain's mapping count.
    let removed = 0;
    for (let slot = last; slot >= 0 && le64(sLo, sHi, pool.startLo[slot]!, pool.startHi[slot]!); ) {
      tree.remove(slot);
      removed++;
      slot = tree.floor(eLo, eHi);
    }
    if (removed > 0) this.pageCache.invalidate();
    if (this.emitter.listenerCount('unmap') > 0) {
      this.emitter.emit('unmap', {
        domain: domainId,
        virtStart: joinU64(sLo, sHi),
        virtEnd: joinU64(eLo, eHi),
        removed,
      });
    }
    return Status.OK;
  }

  /** Whether a mapping of the domain covers one of the endpoint's reserved regions. */
  private mappingsOverlapRegions(domain: Domain, endpoint: Endpoint): boolean {
    const b = endpoint.regionBounds;
    for (let i = 0; i < endpoint.regionCount; i++) {
      const o = i * 4;
      if (domain.mappings!.overlaps(b[o]!, b[o + 1]!, b[o + 2]!, b[o + 3]!)) return true;
    }
    return false;
  }

  /** Device reset (virtio 1.2 §5.13.5): every endpoint detached, every domain destroyed; bypass kept. */
  reset(): void {
    for (const endpoint of this.endpoints.values()) {
      if (endpoint.domain !== null) this.detachEndpoint(endpoint, 'reset');
    }
    this.domains.clear();
    this.pool.clear();
    this.setNegotiated(0n);
  }
}
