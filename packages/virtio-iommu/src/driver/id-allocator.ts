import { VmmError } from '@vmmkit/core';

/**
 * Hands out integer IDs from an inclusive range (Linux `ida_alloc_range`): domain IDs within
 * `domain_range`, ASIDs within [1, 2^asid_bits). A cursor makes allocation O(1) while the range
 * is not exhausted; a full search is bounded by the number of IDs in use.
 */
export class IdAllocator {
  private readonly used = new Set<number>();
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
  }

  get size(): number {
    return this.end - this.start + 1;
  }

  get inUse(): number {
    return this.used.size;
  }

  alloc(): number {
    if (this.used.size >= this.size) {
      throw new VmmError('ENOMEM', `every ${this.what} in [${this.start}, ${this.end}] is in use`);
    }
    // At most used.size + 1 probes: each taken ID is skipped once.
    for (let tries = 0; tries <= this.used.size; tries++) {
      const id = this.cursor;
      this.cursor = id === this.end ? this.start : id + 1;
      if (!this.used.has(id)) {
        this.used.add(id);
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
    if (this.used.has(id)) throw new VmmError('EEXIST', `${this.what} ${id} is already in use`);
    this.used.add(id);
  }

  free(id: number): void {
    this.used.delete(id);
  }

  has(id: number): boolean {
    return this.used.has(id);
  }
}
