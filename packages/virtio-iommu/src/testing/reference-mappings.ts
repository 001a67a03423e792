import { Status } from '../protocol/constants.js';

/** One mapping of the reference model: inclusive bounds, physical start, MAP flags. */
export interface ReferenceMapping {
  start: bigint;
  end: bigint;
  phys: bigint;
  flags: number;
}

/**
 * The mappings of one MAP/UNMAP domain with the spec's rules written the obvious way (virtio 1.2
 * §5.13.6.5-6) over BigInt intervals: what property tests hold the device's mapping tree and
 * its caches to.
 */
export class ReferenceMappings {
  intervals: ReferenceMapping[] = [];

  /** MAP's status (alignment and range checks left to the caller). */
  map(start: bigint, end: bigint, phys: bigint, flags: number): number {
    if (end <= start) return Status.RANGE;
    if (this.intervals.some((m) => m.start <= end && start <= m.end)) return Status.INVAL;
    this.intervals.push({ start, end, phys, flags });
    return Status.OK;
  }

  /** UNMAP's status: a mapping only partly inside the range is S_RANGE and nothing is removed. */
  unmap(start: bigint, end: bigint): number {
    if (end < start) return Status.RANGE;
    const touched = this.intervals.filter((m) => m.start <= end && start <= m.end);
    if (touched.some((m) => m.start < start || m.end > end)) return Status.RANGE;
    this.intervals = this.intervals.filter((m) => !touched.includes(m));
    return Status.OK;
  }

  /** The mapping holding `iova`, if any. */
  find(iova: bigint): ReferenceMapping | undefined {
    return this.intervals.find((m) => m.start <= iova && iova <= m.end);
  }

  /** The physical address of `iova`, or null when nothing maps it. */
  lookup(iova: bigint): bigint | null {
    const m = this.find(iova);
    return m === undefined ? null : m.phys + (iova - m.start);
  }
}
