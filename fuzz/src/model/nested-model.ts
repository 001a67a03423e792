/**
 * Reference model of a nested (guest-table) domain: what an endpoint may reach through the
 * guest's own PASID table and page tables, given the IOTLB/CD caching the device may do.
 *
 * Semantics (conservative and precise):
 * - `current` is what the guest last wrote through its io-pgtable, page by page (4 KiB).
 * - A page changed since the last invalidation that covers it keeps its earlier values in
 *   `stale[page]`: the device may still translate with any of them (a cached IOTLB entry) or
 *   with the new one. A covering invalidation empties `stale[page]`.
 * - A context descriptor changed (PASID added or removed) without a covering CD invalidation
 *   keeps the whole earlier state of that PASID as a `ghost` (either "absent": every access
 *   faults, or a page map): the device may still use the cached CD and its tables.
 * - Corrupt bytes written into any table of the domain taint it: until the domain dies, any
 *   translation inside guest RAM (or a fault) is allowed for every PASID. The property that
 *   remains is "never outside guest RAM, never a host exception, every fault reported".
 *
 * Only invalidations whose effect the protocol pins down clear state: DOMAIN granularity with
 * the IOTLB and PASID caches, PASID granularity naming the PASID's ASID with both caches, and
 * VA ranges naming the ASID. Anything else may or may not invalidate, so it clears nothing
 * (the current tables are always allowed, so over-invalidation is never a false alarm).
 */

export interface PageEntry {
  pa: number;
  read: boolean;
  write: boolean;
}

/** A PASID's translation state: a map of IOVA page → entry (absent page: fault). */
export type PageMap = Map<number, PageEntry>;

export interface PasidState {
  asid: number;
  current: PageMap;
  stale: Map<number, (PageEntry | null)[]>;
}

/** One outcome the model allows for an access: a target page, or a fault. */
export interface NestedAllowed {
  faultOk: boolean;
  /** Allowed guest-physical page addresses; `null` means any page of guest RAM (tainted). */
  pages: Set<number> | null;
  /** Identity (s1dss bypass): the output equals the input address. */
  identity: boolean;
}

export type S1Dss = 0 | 1 | 2;

export class NestedTableModel {
  readonly pasids = new Map<number, PasidState>();
  /** Earlier whole-PASID states still possibly cached (null = the PASID had no CD). */
  readonly ghosts = new Map<number, (PageMap | null)[]>();
  tainted = false;

  constructor(
    readonly s1dss: S1Dss,
    readonly pasidLimit: number,
  ) {}

  addPasid(pasid: number, asid: number, invalidated: boolean): void {
    const before = this.snapshot(pasid);
    this.pasids.set(pasid, { asid, current: new Map(), stale: new Map() });
    if (!invalidated) this.pushGhost(pasid, before);
  }

  removePasid(pasid: number, invalidated: boolean): void {
    const before = this.snapshot(pasid);
    this.pasids.delete(pasid);
    if (!invalidated) this.pushGhost(pasid, before);
    else this.ghosts.delete(pasid);
  }

  setPage(pasid: number, page: number, entry: PageEntry | null): void {
    const state = this.pasids.get(pasid)!;
    const old = state.current.get(page) ?? null;
    const list = state.stale.get(page) ?? [];
    list.push(old);
    state.stale.set(page, list);
    if (entry === null) state.current.delete(page);
    else state.current.set(page, entry);
  }

  /** VA invalidation of `[firstPage, lastPage]` for the PASID holding `asid`. */
  invalidatePages(asid: number, firstPage: number, lastPage: number): void {
    for (const state of this.pasids.values()) {
      if (state.asid !== asid) continue;
      for (const page of [...state.stale.keys()]) {
        if (page >= firstPage && page <= lastPage) state.stale.delete(page);
      }
    }
  }

  invalidatePasid(pasid: number, asid: number): void {
    this.ghosts.delete(pasid);
    const state = this.pasids.get(pasid);
    if (state !== undefined && state.asid === asid) state.stale.clear();
  }

  invalidateAll(): void {
    this.ghosts.clear();
    for (const state of this.pasids.values()) state.stale.clear();
  }

  /** What an access at IOVA page `page` may do (`pasid` undefined: no PASID). */
  allowed(pasid: number | undefined, page: number, write: boolean): NestedAllowed {
    if (this.tainted) return { faultOk: true, pages: null, identity: false };
    let effective = pasid;
    if (pasid === undefined) {
      if (this.s1dss === 0) return { faultOk: true, pages: new Set(), identity: false };
      if (this.s1dss === 1) return { faultOk: false, pages: new Set(), identity: true };
      effective = 0;
    } else if (this.s1dss === 2 && pasid === 0) {
      // SMMUv3: with S1DSS "substream 0", a transaction naming PASID 0 is illegal (C_BAD_SUBSTREAMID).
      return { faultOk: true, pages: new Set(), identity: false };
    }
    const out: NestedAllowed = { faultOk: false, pages: new Set(), identity: false };
    const consider = (e: PageEntry | null | undefined) => {
      if (e === null || e === undefined || !(write ? e.write : e.read)) out.faultOk = true;
      else out.pages!.add(e.pa);
    };
    if (effective! >= this.pasidLimit) return { faultOk: true, pages: new Set(), identity: false };
    const state = this.pasids.get(effective!);
    if (state === undefined) consider(null);
    else {
      consider(state.current.get(page));
      for (const e of state.stale.get(page) ?? []) consider(e);
    }
    for (const ghost of this.ghosts.get(effective!) ?? []) consider(ghost === null ? null : ghost.get(page));
    return out;
  }

  /** What the PASID may resolve to right now: its current map and every stale page value. */
  private snapshot(pasid: number): (PageMap | null)[] {
    const state = this.pasids.get(pasid);
    if (state === undefined) return [null];
    const maps: (PageMap | null)[] = [new Map(state.current)];
    for (const [page, values] of state.stale) {
      for (const v of values) maps.push(v === null ? null : new Map([[page, v]]));
    }
    return maps;
  }

  private pushGhost(pasid: number, before: (PageMap | null)[]): void {
    this.ghosts.set(pasid, [...(this.ghosts.get(pasid) ?? []), ...before]);
  }
}
