import { hex, type MmioHandler, VmmError } from '@vmmkit/core';

/** Access widths the bus accepts (an MMIO access is at most one 64-bit word). */
export type MmioSize = 1 | 2 | 4 | 8;

interface Region {
  base: number;
  end: number;
  handler: MmioHandler;
}

/** What the bus saw that no device claimed, and device handlers that threw. */
export interface MmioBusStats {
  unclaimedReads: number;
  unclaimedWrites: number;
  /** Accesses whose handler threw; the guest saw 0 / a dropped write. */
  handlerErrors: number;
}

/**
 * The MMIO bus (kvmtool's `kvm__emulate_mmio` with its device tree of regions): dispatches a
 * guest access to the handler whose window contains it. Like a real bus with no device
 * decoding the address, unclaimed reads return 0 and unclaimed writes are dropped; both are
 * counted so tests and the CLI can show them.
 */
export class MmioBus {
  private regions: Region[] = [];
  private last: Region | null = null;
  private readonly counters: MmioBusStats = { unclaimedReads: 0, unclaimedWrites: 0, handlerErrors: 0 };
  /** Called when a handler throws, so the VM can report it; the guest never sees the exception. */
  onHandlerError: (error: unknown, region: MmioHandler, gpa: number) => void = () => {};

  register(base: number, handler: MmioHandler): void {
    const size = handler.size;
    if (!Number.isSafeInteger(base) || base < 0 || !Number.isSafeInteger(size) || size <= 0) {
      throw new VmmError(
        'EINVAL',
        `MMIO window of '${handler.name}' needs a non-negative base and positive size, got ${String(base)}+${String(size)}`,
      );
    }
    const end = base + size;
    const clash = this.regions.find((r) => r.base < end && base < r.end);
    if (clash) {
      throw new VmmError(
        'EEXIST',
        `MMIO window ${hex(base)}-${hex(end - 1)} of '${handler.name}' overlaps '${clash.handler.name}' at ${hex(clash.base)}-${hex(clash.end - 1)}`,
        { base, size, existing: clash.base },
      );
    }
    this.regions.push({ base, end, handler });
    this.regions.sort((a, b) => a.base - b.base);
  }

  unregister(base: number): MmioHandler {
    const index = this.regions.findIndex((r) => r.base === base);
    if (index < 0) throw new VmmError('ENOENT', `no MMIO window starts at ${hex(base)}`, { base });
    const [region] = this.regions.splice(index, 1);
    if (this.last === region) this.last = null;
    return region!.handler;
  }

  /** The windows, in address order. */
  get windows(): readonly { base: number; size: number; handler: MmioHandler }[] {
    return this.regions.map((r) => ({ base: r.base, size: r.end - r.base, handler: r.handler }));
  }

  get stats(): Readonly<MmioBusStats> {
    return this.counters;
  }

  /** The window holding the whole access, or null (an access straddling two windows is unclaimed). */
  private find(gpa: number, size: number): Region | null {
    const last = this.last;
    if (last !== null && gpa >= last.base && gpa + size <= last.end) return last;
    const regions = this.regions;
    let lo = 0;
    let hi = regions.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = regions[mid]!;
      if (gpa < r.base) hi = mid - 1;
      else if (gpa >= r.end) lo = mid + 1;
      else {
        if (gpa + size > r.end) return null;
        this.last = r;
        return r;
      }
    }
    return null;
  }

  read(gpa: number, size: MmioSize): number {
    const region = this.find(gpa, size);
    if (region === null) {
      this.counters.unclaimedReads++;
      return 0;
    }
    try {
      return region.handler.read(gpa - region.base, size);
    } catch (error) {
      this.counters.handlerErrors++;
      this.onHandlerError(error, region.handler, gpa);
      return 0;
    }
  }

  write(gpa: number, size: MmioSize, value: number): void {
    const region = this.find(gpa, size);
    if (region === null) {
      this.counters.unclaimedWrites++;
      return;
    }
    try {
      region.handler.write(gpa - region.base, size, value);
    } catch (error) {
      this.counters.handlerErrors++;
      this.onHandlerError(error, region.handler, gpa);
    }
  }
}
