import sortedBtree from 'sorted-btree';

/**
 * Mappings of every MAP/UNMAP domain, stored exactly over the whole 64-bit IOVA space without
 * BigInt and without one object per mapping.
 *
 * A mapping lives in a *slot* of one shared pool of typed arrays (start, inclusive end and
 * physical start as 32-bit halves, plus flags: 25 bytes). Each domain keeps a B+ tree
 * (`sorted-btree`) whose keys are slot numbers, ordered by the start address their slot holds,
 * and whose values are all `undefined` (the library then shares one value array), so a
 * mapping costs its slot plus one small-integer key. Searches write the probe address into
 * slot 0 and compare against it: O(log n), allocation-free.
 *
 * Rules that keep the tree consistent: a slot's start never changes while its key is in a
 * tree, and a slot is released only after its key left the tree.
 */

// sorted-btree is CommonJS with `exports.default`: Node's default import is `module.exports`,
// a bundler's may already be the class.
type BTreeClass = typeof sortedBtree.default;
const BTree: BTreeClass =
  (sortedBtree as unknown as { default?: BTreeClass }).default ?? (sortedBtree as unknown as BTreeClass);
/** The part of `BTree<number, undefined>` used here. */
interface Tree {
  readonly size: number;
  set(key: number, value: undefined): boolean;
  delete(key: number): boolean;
  getPairOrNextLower(key: number, reused: [number, undefined]): [number, undefined] | undefined;
  forEach(fn: (value: undefined, key: number) => void): number;
  clear(): void;
  checkValid(checkOrdering?: boolean): void;
}

/** Slot 0 is the search probe; it is never inserted into a tree. */
const PROBE = 0;
const INITIAL_CAPACITY = 1024;
/** Branching factor: big leaves keep the per-mapping overhead low; splices stay short. */
const NODE_SIZE = 128;

export class MappingPool {
  startLo = new Uint32Array(INITIAL_CAPACITY);
  startHi = new Uint32Array(INITIAL_CAPACITY);
  endLo = new Uint32Array(INITIAL_CAPACITY);
  endHi = new Uint32Array(INITIAL_CAPACITY);
  physLo = new Uint32Array(INITIAL_CAPACITY);
  physHi = new Uint32Array(INITIAL_CAPACITY);
  flags = new Uint8Array(INITIAL_CAPACITY);
  /** Bumped when a slot is released, so translation caches holding it see it is stale. */
  generation = new Uint32Array(INITIAL_CAPACITY);
  private freeSlots = new Int32Array(INITIAL_CAPACITY);
  private freeCount = 0;
  /** Slots handed out at least once (slot 0, the probe, included). */
  private highWater = 1;
  /** Live mappings in every domain. */
  live = 0;

  /** Orders two slots by start address. Bound once; the trees call it. */
  readonly compare = (a: number, b: number): number => {
    const ha = this.startHi[a]!;
    const hb = this.startHi[b]!;
    if (ha !== hb) return ha < hb ? -1 : 1;
    const la = this.startLo[a]!;
    const lb = this.startLo[b]!;
    return la < lb ? -1 : la > lb ? 1 : 0;
  };

  get capacity(): number {
    return this.startLo.length;
  }

  setProbe(lo: number, hi: number): number {
    this.startLo[PROBE] = lo;
    this.startHi[PROBE] = hi;
    return PROBE;
  }

  allocate(
    startLo: number,
    startHi: number,
    endLo: number,
    endHi: number,
    physLo: number,
    physHi: number,
    flags: number,
  ): number {
    let slot: number;
    if (this.freeCount > 0) slot = this.freeSlots[--this.freeCount]!;
    else {
      if (this.highWater === this.startLo.length) this.grow();
      slot = this.highWater++;
    }
    this.startLo[slot] = startLo;
    this.startHi[slot] = startHi;
    this.endLo[slot] = endLo;
    this.endHi[slot] = endHi;
    this.physLo[slot] = physLo;
    this.physHi[slot] = physHi;
    this.flags[slot] = flags;
    this.live++;
    return slot;
  }

  release(slot: number): void {
    this.generation[slot] = (this.generation[slot]! + 1) >>> 0;
    this.freeSlots[this.freeCount++] = slot;
    this.live--;
  }

  /** Forgets every mapping (device reset): the trees referencing slots must be dropped too. */
  clear(): void {
    // Every slot becomes stale for the caches of trees that may outlive the reset.
    for (let i = 1; i < this.highWater; i++) this.generation[i] = (this.generation[i]! + 1) >>> 0;
    this.freeCount = 0;
    this.highWater = 1;
    this.live = 0;
  }

  private grow(): void {
    const size = this.startLo.length * 2;
    const grown = <T extends Uint32Array | Uint8Array | Int32Array>(old: T, make: (n: number) => T): T => {
      const next = make(size);
      next.set(old);
      return next;
    };
    this.startLo = grown(this.startLo, (n) => new Uint32Array(n));
    this.startHi = grown(this.startHi, (n) => new Uint32Array(n));
    this.endLo = grown(this.endLo, (n) => new Uint32Array(n));
    this.endHi = grown(this.endHi, (n) => new Uint32Array(n));
    this.physLo = grown(this.physLo, (n) => new Uint32Array(n));
    this.physHi = grown(this.physHi, (n) => new Uint32Array(n));
    this.flags = grown(this.flags, (n) => new Uint8Array(n));
    this.generation = grown(this.generation, (n) => new Uint32Array(n));
    this.freeSlots = grown(this.freeSlots, (n) => new Int32Array(n));
  }
}

/** `(aHi, aLo) <= (bHi, bLo)` as unsigned 64-bit values. */
export function le64(aLo: number, aHi: number, bLo: number, bHi: number): boolean {
  return aHi < bHi || (aHi === bHi && aLo <= bLo);
}

/** Entries of the per-domain translation cache (direct-mapped by IOVA page): 8 KiB a domain. */
const TLB_SIZE = 1024;

/** The mappings of one domain, ordered by start address. */
export class MappingTree {
  private readonly tree: Tree;
  private readonly pair: [number, undefined] = [0, undefined];
  /**
   * A small direct-mapped cache in front of the tree for DMA lookups, created on the first
   * lookup (only domains that endpoints use). An entry is trusted only when its slot's
   * generation is unchanged and the slot's range holds the address, so it never needs flushing.
   */
  private tlbSlot: Int32Array | null = null;
  private tlbGeneration: Uint32Array | null = null;

  constructor(readonly pool: MappingPool) {
    this.tree = new BTree<number, undefined>(undefined, pool.compare, NODE_SIZE) as unknown as Tree;
  }

  get size(): number {
    return this.tree.size;
  }

  /** The slot with the greatest start <= the address, or -1. */
  floor(lo: number, hi: number): number {
    const found = this.tree.getPairOrNextLower(this.pool.setProbe(lo, hi), this.pair);
    return found === undefined ? -1 : found[0];
  }

  /** The slot whose range contains the address, or -1. */
  lookup(lo: number, hi: number): number {
    const pool = this.pool;
    let tlbSlot = this.tlbSlot;
    let tlbGeneration = this.tlbGeneration;
    // The high half is scattered over the index (a multiplicative hash) so that buffers 4 GiB
    // apart, like a DMA's source and destination, do not evict each other page for page.
    const index = ((lo >>> 12) ^ Math.imul(hi, 0x9e37_79b1)) & (TLB_SIZE - 1);
    if (tlbSlot === null || tlbGeneration === null) {
      tlbSlot = this.tlbSlot = new Int32Array(TLB_SIZE);
      tlbGeneration = this.tlbGeneration = new Uint32Array(TLB_SIZE);
    } else {
      const cached = tlbSlot[index]!;
      if (
        cached > 0 &&
        tlbGeneration[index] === pool.generation[cached] &&
        le64(pool.startLo[cached]!, pool.startHi[cached]!, lo, hi) &&
        le64(lo, hi, pool.endLo[cached]!, pool.endHi[cached]!)
      ) {
        return cached;
      }
    }
    const slot = this.floor(lo, hi);
    if (slot < 0 || !le64(lo, hi, pool.endLo[slot]!, pool.endHi[slot]!)) return -1;
    tlbSlot[index] = slot;
    tlbGeneration[index] = pool.generation[slot]!;
    return slot;
  }

  /** Whether any mapping intersects [start, end] (inclusive, start <= end). */
  overlaps(startLo: number, startHi: number, endLo: number, endHi: number): boolean {
    // Mappings are disjoint, so the one with the greatest start <= end is the only candidate.
    const slot = this.floor(endLo, endHi);
    if (slot < 0) return false;
    const pool = this.pool;
    return le64(startLo, startHi, pool.endLo[slot]!, pool.endHi[slot]!);
  }

  insert(slot: number): void {
    this.tree.set(slot, undefined);
  }

  /** Removes a slot's key and releases the slot. */
  remove(slot: number): void {
    this.tree.delete(slot);
    this.pool.release(slot);
  }

  /** Calls `fn` for each slot in address order (cold path). */
  forEach(fn: (slot: number) => void): void {
    this.tree.forEach((_v: undefined, slot: number) => {
      fn(slot);
    });
  }

  /** Releases every mapping. */
  clear(): void {
    this.tree.forEach((_v: undefined, slot: number) => {
      this.pool.release(slot);
    });
    this.tree.clear();
  }

  /** Throws if the tree's internal invariants broke (tests). */
  checkValid(): void {
    this.tree.checkValid(true);
  }
}
