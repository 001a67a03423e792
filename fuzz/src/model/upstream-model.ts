/**
 * Reference model of upstream virtio-iommu (virtio 1.2 §5.13) for the isolation property: which
 * endpoint is attached where, which domains exist with which mappings, and the status each
 * request must get. It shares no code or data structure with the device: domains are plain
 * objects, mappings a sorted array of bigint intervals, statuses derived from the spec tables
 * (reference §3, checked in the order the package README documents).
 *
 * Where the spec leaves the order of two checks open, `expect*` returns every acceptable status
 * and `apply*` takes the status the device really gave, so the model follows the device only
 * along paths the spec allows.
 */
import { Status } from '@vmmkit/virtio-iommu';

export interface ModelMapping {
  start: bigint;
  /** Inclusive. */
  end: bigint;
  phys: bigint;
  flags: number;
}

export type ModelDomainKind = 'map' | 'bypass' | 'table';

export interface ModelDomain {
  id: number;
  kind: ModelDomainKind;
  endpoints: Set<number>;
  mappings: ModelMapping[];
  /** Nested domains: the table key (payload bytes as hex) the domain holds. */
  tableKey?: string;
}

export interface ModelRegion {
  start: bigint;
  end: bigint;
  subtype: 'reserved' | 'msi';
}

export interface UpstreamModelConfig {
  endpoints: ReadonlyMap<number, readonly ModelRegion[]>;
  granule: bigint;
  inputStart: bigint;
  inputEnd: bigint;
  domainStart: number;
  domainEnd: number;
  maxDomains: number;
  maxMappingsPerDomain: number;
  bypass: boolean;
  /** Format numbers each endpoint is offered (PROBE). */
  tableFormats: ReadonlyMap<number, readonly number[]>;
}

export const U64_MAX = (1n << 64n) - 1n;
const MAP_FLAGS = 0b111; // READ | WRITE | MMIO (F_MMIO offered)
const ATTACH_BYPASS = 1;

/** Where an access of an endpoint may go, per the spec's translation path (reference §3.8). */
export type UpstreamAccess =
  | { kind: 'identity' }
  | { kind: 'mapped'; pa: bigint; flags: number; mmio: boolean }
  | { kind: 'fault'; reason: number; pasidFlag: boolean }
  | { kind: 'table'; domain: ModelDomain };

export class UpstreamModel {
  readonly domains = new Map<number, ModelDomain>();
  readonly attached = new Map<number, ModelDomain>();

  constructor(readonly config: UpstreamModelConfig) {}

  private outOfDomainRange(domain: number): boolean {
    return domain < this.config.domainStart || domain > this.config.domainEnd;
  }

  private knows(endpoint: number): boolean {
    return this.config.endpoints.has(endpoint);
  }

  // --- ATTACH (reference §3.2) ---

  expectAttach(domain: number, endpoint: number, flags: number, reserved: number): Status[] {
    if (reserved !== 0 || (flags & ~ATTACH_BYPASS) !== 0) return [Status.INVAL];
    if (this.outOfDomainRange(domain)) return [Status.RANGE];
    if (!this.knows(endpoint)) return [Status.NOENT];
    const existing = this.domains.get(domain);
    if (existing?.kind === 'table') return [Status.UNSUPP];
    const bypass = (flags & ATTACH_BYPASS) !== 0;
    if (existing !== undefined && (existing.kind === 'bypass') !== bypass) return [Status.INVAL];
    if (existing?.endpoints.has(endpoint)) return [Status.OK];
    if (existing !== undefined && this.mappingsCoverRegions(existing, endpoint)) return [Status.UNSUPP];
    if (existing === undefined && this.domains.size >= this.config.maxDomains) {
      // The implicit detach may free a slot first: the spec fixes no order between the two.
      return this.wouldFreeDomain(endpoint) ? [Status.NOMEM, Status.OK] : [Status.NOMEM];
    }
    return [Status.OK];
  }

  applyAttach(domain: number, endpoint: number, flags: number, status: number): void {
    if (status !== Status.OK) return;
    const existing = this.domains.get(domain);
    if (existing?.endpoints.has(endpoint)) return;
    const kind: ModelDomainKind = (flags & ATTACH_BYPASS) !== 0 ? 'bypass' : 'map';
    this.detachImplicit(endpoint);
    const target = existing ?? this.create(domain, kind);
    target.endpoints.add(endpoint);
    this.attached.set(endpoint, target);
  }

  // --- DETACH (reference §3.3) ---

  expectDetach(domain: number, endpoint: number): Status[] {
    if (!this.knows(endpoint)) return [Status.NOENT];
    if (this.outOfDomainRange(domain)) return [Status.RANGE];
    if (this.attached.get(endpoint)?.id !== domain) return [Status.INVAL];
    return [Status.OK];
  }

  applyDetach(_domain: number, endpoint: number, status: number): void {
    if (status === Status.OK) this.detachImplicit(endpoint);
  }

  // --- MAP (reference §3.4) ---

  expectMap(domain: number, start: bigint, end: bigint, phys: bigint, flags: number): Status[] {
    if ((flags & ~MAP_FLAGS) !== 0) return [Status.INVAL];
    if (this.outOfDomainRange(domain)) return [Status.RANGE];
    const d = this.domains.get(domain);
    if (d === undefined) return [Status.NOENT];
    if (d.kind !== 'map') return [Status.INVAL];
    const g = this.config.granule;
    if (
      end <= start ||
      start < this.config.inputStart ||
      end > this.config.inputEnd ||
      start % g !== 0n ||
      (end + 1n) % g !== 0n ||
      phys % g !== 0n ||
      phys + (end - start) > U64_MAX
    ) {
      return [Status.RANGE];
    }
    if (d.mappings.some((m) => m.start <= end && start <= m.end)) return [Status.INVAL];
    for (const e of d.endpoints) {
      for (const r of this.config.endpoints.get(e) ?? []) {
        if (r.start <= end && start <= r.end) return [Status.INVAL];
      }
    }
    if (d.mappings.length >= this.config.maxMappingsPerDomain) return [Status.NOMEM];
    return [Status.OK];
  }

  applyMap(domain: number, start: bigint, end: bigint, phys: bigint, flags: number, status: number): void {
    if (status !== Status.OK) return;
    const d = this.domains.get(domain)!;
    d.mappings.push({ start, end, phys, flags });
    d.mappings.sort((a, b) => (a.start < b.start ? -1 : 1));
  }

  // --- UNMAP (reference §3.5) ---

  expectUnmap(domain: number, start: bigint, end: bigint, reserved: number): Status[] {
    if (reserved !== 0) return [Status.INVAL];
    if (this.outOfDomainRange(domain)) return [Status.RANGE];
    const d = this.domains.get(domain);
    if (d === undefined) return [Status.NOENT];
    if (d.kind !== 'map') return [Status.INVAL];
    if (end < start) return [Status.RANGE];
    const split = d.mappings.some(
      (m) => m.start <= end && start <= m.end && (m.start < start || m.end > end),
    );
    return split ? [Status.RANGE] : [Status.OK];
  }

  applyUnmap(domain: number, start: bigint, end: bigint, status: number): void {
    if (status !== Status.OK) return;
    const d = this.domains.get(domain)!;
    d.mappings = d.mappings.filter((m) => !(m.start >= start && m.end <= end));
  }

  // --- ATTACH_TABLE (PROTOCOL.md statuses for the extension) ---

  /**
   * `payloadOk` says whether the payload is one the guest library produced for a table in RAM
   * (then the backend must accept it); for corrupt payloads every backend refusal is allowed.
   */
  expectAttachTable(
    domain: number,
    endpoint: number,
    flags: number,
    format: number,
    tableKey: string,
    payloadOk: boolean,
  ): Status[] {
    if (flags !== 0) return [Status.INVAL];
    if (!this.knows(endpoint)) return [Status.NOENT];
    if (this.outOfDomainRange(domain)) return [Status.RANGE];
    if (!(this.config.tableFormats.get(endpoint) ?? []).includes(format)) return [Status.UNSUPP];
    const existing = this.domains.get(domain);
    if (existing !== undefined) {
      if (existing.kind !== 'table') {
        // A map domain without mappings: the spec says nothing; either answer is acceptable.
        return existing.kind === 'map' && existing.mappings.length === 0
          ? [Status.UNSUPP, Status.OK, Status.INVAL, Status.FAULT]
          : [Status.UNSUPP];
      }
      if (existing.tableKey !== tableKey) return [Status.UNSUPP];
      return [Status.OK];
    }
    const refusals = payloadOk ? [] : [Status.INVAL, Status.FAULT, Status.UNSUPP];
    if (this.domains.size >= this.config.maxDomains) {
      return this.wouldFreeDomain(endpoint)
        ? [Status.NOMEM, Status.OK, ...refusals]
        : [Status.NOMEM, ...refusals];
    }
    return payloadOk ? [Status.OK] : [Status.OK, ...refusals];
  }

  applyAttachTable(domain: number, endpoint: number, tableKey: string, status: number): ModelDomain | null {
    if (status !== Status.OK) return null;
    const existing = this.domains.get(domain);
    if (existing?.endpoints.has(endpoint)) return existing;
    this.detachImplicit(endpoint);
    const target = existing ?? this.create(domain, 'table');
    target.kind = 'table';
    target.tableKey = tableKey;
    target.endpoints.add(endpoint);
    this.attached.set(endpoint, target);
    return target;
  }

  // --- INVALIDATE ---

  expectInvalidate(domain: number, wellFormed: boolean): Status[] {
    if (!wellFormed) return [Status.INVAL];
    if (this.outOfDomainRange(domain)) return [Status.RANGE];
    const d = this.domains.get(domain);
    if (d === undefined) return [Status.NOENT];
    if (d.kind !== 'table') return [Status.INVAL];
    return [Status.OK];
  }

  // --- translation (reference §3.8, PROTOCOL.md "Translation of a DMA") ---

  /** Where one byte at `iova` of `endpoint` may go for `access` ('read' | 'write'). */
  access(endpoint: number, pasid: number | undefined, iova: bigint, write: boolean): UpstreamAccess {
    const regions = this.config.endpoints.get(endpoint);
    const domain = this.attached.get(endpoint);
    if (regions === undefined || domain === undefined) {
      if (this.config.bypass) return { kind: 'identity' };
      return { kind: 'fault', reason: regions === undefined ? 0 : 1, pasidFlag: pasid !== undefined };
    }
    for (const r of regions) {
      if (iova >= r.start && iova <= r.end) {
        return r.subtype === 'msi'
          ? { kind: 'identity' }
          : { kind: 'fault', reason: 2, pasidFlag: pasid !== undefined };
      }
    }
    if (domain.kind === 'bypass') return { kind: 'identity' };
    if (domain.kind === 'table') return { kind: 'table', domain };
    if (pasid !== undefined) return { kind: 'fault', reason: 0, pasidFlag: true };
    const m = domain.mappings.find((x) => iova >= x.start && iova <= x.end);
    const needed = write ? 2 : 1;
    if (m === undefined || (m.flags & needed) === 0) return { kind: 'fault', reason: 2, pasidFlag: false };
    return { kind: 'mapped', pa: m.phys + (iova - m.start), flags: m.flags, mmio: (m.flags & 4) !== 0 };
  }

  // --- lifetime ---

  private create(id: number, kind: ModelDomainKind): ModelDomain {
    const d: ModelDomain = { id, kind, endpoints: new Set(), mappings: [] };
    this.domains.set(id, d);
    return d;
  }

  private wouldFreeDomain(endpoint: number): boolean {
    const old = this.attached.get(endpoint);
    return old !== undefined && old.endpoints.size === 1;
  }

  /** Detaches `endpoint` from its domain; the domain dies with its last endpoint (§3.3). */
  private detachImplicit(endpoint: number): ModelDomain | null {
    const old = this.attached.get(endpoint);
    if (old === undefined) return null;
    old.endpoints.delete(endpoint);
    this.attached.delete(endpoint);
    if (old.endpoints.size === 0) this.domains.delete(old.id);
    return old;
  }

  private mappingsCoverRegions(domain: ModelDomain, endpoint: number): boolean {
    const regions = this.config.endpoints.get(endpoint) ?? [];
    return domain.mappings.some((m) => regions.some((r) => r.start <= m.end && m.start <= r.end));
  }

  /** Domains that died since `before` (ids), for the nested model to drop their tables. */
  reset(): void {
    this.domains.clear();
    this.attached.clear();
  }
}
