import type { NestedFormatDescription, NestedTable } from '@vmmkit/core';
import { hi32, lo32 } from '../protocol/u64.js';
import type { DomainKind } from './events.js';
import { le64, type MappingPool, MappingTree } from './mapping-store.js';
import type { ResolvedEndpoint } from './options.js';

/** An endpoint the platform declared, with its reserved regions as 32-bit halves for the hot paths. */
export class Endpoint {
  readonly id: number;
  /** Per region: start lo, start hi, end lo, end hi. */
  readonly regionBounds: Uint32Array;
  readonly regionMsi: Uint8Array;
  readonly regionCount: number;
  domain: Domain | null = null;

  constructor(
    readonly config: ResolvedEndpoint,
    /** Nested formats this endpoint is offered (PROBE types 6/7). */
    readonly formats: readonly NestedFormatDescription[],
  ) {
    this.id = config.id;
    this.regionCount = config.regions.length;
    this.regionBounds = new Uint32Array(this.regionCount * 4);
    this.regionMsi = new Uint8Array(this.regionCount);
    config.regions.forEach((r, i) => {
      this.regionBounds.set([lo32(r.start), hi32(r.start), lo32(r.end), hi32(r.end)], i * 4);
      this.regionMsi[i] = r.msi ? 1 : 0;
    });
  }

  /** Index of the reserved region holding the address, or -1. */
  regionAt(lo: number, hi: number): number {
    const b = this.regionBounds;
    for (let i = 0; i < this.regionCount; i++) {
      const o = i * 4;
      if (le64(b[o]!, b[o + 1]!, lo, hi) && le64(lo, hi, b[o + 2]!, b[o + 3]!)) return i;
    }
    return -1;
  }

  /** Whether [start, end] intersects a reserved region. */
  regionOverlaps(startLo: number, startHi: number, endLo: number, endHi: number): boolean {
    const b = this.regionBounds;
    for (let i = 0; i < this.regionCount; i++) {
      const o = i * 4;
      if (le64(b[o]!, b[o + 1]!, endLo, endHi) && le64(startLo, startHi, b[o + 2]!, b[o + 3]!)) return true;
    }
    return false;
  }

  format(format: number): NestedFormatDescription | undefined {
    return this.formats.find((f) => f.format === format);
  }
}

/** A domain: a set of endpoints sharing one translation (mappings, bypass, or a guest table). */
export class Domain {
  readonly endpoints: Endpoint[] = [];
  /** Set for `map` domains. */
  readonly mappings: MappingTree | null;
  /** Set for `table` domains. */
  table: NestedTable | null = null;
  format = 0;

  constructor(
    readonly id: number,
    readonly kind: DomainKind,
    pool: MappingPool,
  ) {
    this.mappings = kind === 'map' ? new MappingTree(pool) : null;
  }

  add(endpoint: Endpoint): void {
    this.endpoints.push(endpoint);
    endpoint.domain = this;
  }

  /** Removes the endpoint; returns whether the domain is now empty. */
  remove(endpoint: Endpoint): boolean {
    const i = this.endpoints.indexOf(endpoint);
    if (i >= 0) this.endpoints.splice(i, 1);
    endpoint.domain = null;
    return this.endpoints.length === 0;
  }

  /** Whether [start, end] intersects a reserved region of an attached endpoint. */
  reservedOverlap(startLo: number, startHi: number, endLo: number, endHi: number): boolean {
    const eps = this.endpoints;
    for (let i = 0; i < eps.length; i++) {
      if (eps[i]!.regionOverlaps(startLo, startHi, endLo, endHi)) return true;
    }
    return false;
  }

  /** Releases what the domain holds: its mappings, or its guest table. */
  destroy(): void {
    this.mappings?.clear();
    this.table?.release();
    this.table = null;
  }
}
