import { VmmError } from '@vmmkit/core';

/** Ranges up to this many IDs keep a byte per ID (64 KiB at most) instead of a Set. */
const BITMAP_MAX = 1 << 16;
/** Bytes the map starts with; it doubles when an ID beyond it is taken. */
const BITMAP_INITIAL = 1024;

/**
 * Hands out integer IDs from an inclusive range (Linux `ida_alloc_range`): domain IDs within
 * `domain_range`, ASIDs within [1, 2^asid_bits). A cursor makes allocation O(1) while the range
 * is not exhausted; a full search is bounded by the number of IDs in use. A small range (ASIDs)
 * is a byte map: a nested attach allocates an ASID per PASID, and a Set costs several times more.
 */
export class IdAllocator {
  /** Byte `id - start` is 1 when `id` is in use (small ranges); IDs beyond its length are free. */
  private map: Uint8Array | null;
  /** IDs in use (large ranges). */
  private readonly used: Set<number> | null;
  private count = 0;
  private cursor: number;

  constructor(
    readonly start: number,
    readonly end: number,
    private readonly what: string,
  ) {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start > end) {
      throw new VmmError('EINVAL', `${what} range [${start}, ${end}] is empty or not integral`);
    }
    this.cursor = start;
    const size = end - start + 1;
    this.map = size <= BITMAP_MAX ? new Uint8Array(Math.min(size, BITMAP_INITIAL)) : null;
    this.used = this.map === null ? new Set<number>() : null;
  }

  get size(): number {
    return this.end - this.start + 1;
  }

  get inUse(): number {
    return this.count;
  }

  alloc(): number {
    if (this.count >= this.size) {
      throw new VmmError('ENOMEM', `every ${this.what} in [${this.start}, ${this.end}] is in use`);
    }
    // At most count + 1 probes: each taken ID is skipped once.
    for (let tries = 0; tries <= this.count; tries++) {
      const id = this.cursor;
      this.cursor = id === this.end ? this.start : id + 1;
      if (!this.has(id)) {
        this.take(id);
        return id;
      }
    }
    throw new VmmError('ENOMEM', `no free ${this.what} found in [${this.start}, ${this.end}]`);
  }

  /** Takes a specific ID (e.g. one the caller chose). */
  claim(id: number): void {
    if (!Number.isInteger(id) || id < this.start || id > this.end) {
      throw new VmmError('ERANGE', `${this.what} ${id} is outside [${this.start}, ${this.end}]`);
    }
    if (this.has(id)) throw new VmmError('EEXIST', `${this.what} ${id} is already in use`);
    this.take(id);
  }

  free(id: number): void {
    if (!this.has(id)) return;
    // `has` said the ID is in the map, so its index is within it.
    if (this.map !== null) this.map[id - this.start] = 0;
    else this.used!.delete(id);
    this.count--;
  }

  has(id: number): boolean {
    const map = this.map;
    if (map === null) return this.used!.has(id);
    // Anything outside the range (or not an integer) was never taken, nor anything past the map.
    if (!Number.isInteger(id) || id < this.start || id > this.end) return false;
    const index = id - this.start;
    return index < map.length && map[index] === 1;
  }

  private take(id: number): void {
    let map = this.map;
    if (map === null) this.used!.add(id);
    else {
      const index = id - this.start;
      if (index >= map.length) {
        const grown = new Uint8Array(Math.min(Math.max(map.length * 2, index + 1), this.size));
        grown.set(map);
        map = grown;
        this.map = grown;
      }
      map[index] = 1;
    }
    this.count++;
  }
}
