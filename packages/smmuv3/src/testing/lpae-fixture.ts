/**
 * Test fixtures for the LPAE tables: guest RAM with a page allocator, a TLB that records what the
 * table code asks of it, and an independent BigInt walker that follows Arm ARM D8 step by step.
 * Used by tests and benchmarks only.
 */
import {
  BitmapPageAllocator,
  GuestMemory,
  type IoPgtableCfg,
  type IoPgtableFlushOps,
  type IoPgtableOps,
  type IotlbGather,
  type PageAllocator,
} from '@vmmkit/core';
import { armLpaeS1Format } from '../lpae/format.js';

export const TABLE_REGION_BASE = 0x4000_0000;

export type TlbCall =
  | { op: 'flushAll' }
  | { op: 'flushWalk'; iova: number; size: number; granule: number }
  | { op: 'addPage'; iova: number; granule: number };

/** Records every callback; `addPage` widens the gather like Linux `iommu_iotlb_gather_add_page`. */
export class RecordingTlb implements IoPgtableFlushOps {
  readonly calls: TlbCall[] = [];

  flushAll(): void {
    this.calls.push({ op: 'flushAll' });
  }

  flushWalk(iova: number, size: number, granule: number): void {
    this.calls.push({ op: 'flushWalk', iova, size, granule });
  }

  addPage(gather: IotlbGather, iova: number, granule: number): void {
    this.calls.push({ op: 'addPage', iova, granule });
    gather.start = Math.min(gather.start, iova);
    gather.end = Math.max(gather.end, iova + granule - 1);
    gather.pgsize = granule;
  }

  take(): TlbCall[] {
    return this.calls.splice(0);
  }
}

export interface LpaeFixtureOptions {
  pgsizeBitmap: number;
  ias?: number;
  oas?: number;
  coherentWalk?: boolean;
  /** Bytes of RAM the tables come from. */
  tableBytes?: number;
  /** TLB callbacks instead of a recording one (benchmarks). */
  tlb?: IoPgtableFlushOps;
}

export interface LpaeFixture {
  memory: GuestMemory;
  allocator: BitmapPageAllocator;
  /** The recording TLB (unused when `options.tlb` was given). */
  tlb: RecordingTlb;
  cfg: IoPgtableCfg;
  ops: IoPgtableOps;
}

export function guestRam(
  size: number,
  gpa = TABLE_REGION_BASE,
): { memory: GuestMemory; allocator: BitmapPageAllocator } {
  const memory = new GuestMemory();
  memory.addBank({ gpa, size });
  return { memory, allocator: new BitmapPageAllocator(memory, { base: gpa, size }) };
}

/**
 * An allocator over `allocator` that hands out pages full of 0xff (every stale entry would
 * look valid) and does not promise zeroed pages: for tests that table code zeroes what it
 * publishes whatever the allocator left there.
 */
export function dirtyAllocator(memory: GuestMemory, allocator: PageAllocator): PageAllocator {
  return {
    alloc: (size, align) => {
      const gpa = allocator.alloc(size, align);
      memory.fill(gpa, size, 0xff);
      return gpa;
    },
    free: (gpa) => allocator.free(gpa),
  };
}

export function lpaeFixture(options: LpaeFixtureOptions): LpaeFixture {
  const { memory, allocator } = guestRam(options.tableBytes ?? 16 * 2 ** 20);
  const tlb = new RecordingTlb();
  const cfg: IoPgtableCfg = {
    ias: options.ias ?? 48,
    oas: options.oas ?? 48,
    pgsizeBitmap: options.pgsizeBitmap,
    coherentWalk: options.coherentWalk ?? true,
    tlb: options.tlb ?? tlb,
    memory,
    allocator,
    vendor: {},
  };
  const ops = armLpaeS1Format.alloc(cfg);
  return { memory, allocator, tlb, cfg, ops };
}

export interface WalkStep {
  level: number;
  /** Guest-physical address of the descriptor read at this level. */
  gpa: number;
  pte: bigint;
}

/**
 * Reads the descriptors a stage-1 walk visits for `iova` (Arm ARM D8.2: start level
 * `4 − ceil((ias − g) / (g − 3))`, each level indexing `g − 3` bits above the page offset),
 * stopping at the first invalid entry, block or page.
 */
export function referenceWalk(
  memory: GuestMemory,
  ttbr: number,
  granule: number,
  ias: number,
  iova: number,
): WalkStep[] {
  const g = BigInt(Math.log2(granule));
  const stride = g - 3n;
  const levels = (BigInt(ias) - g + stride - 1n) / stride;
  const va = BigInt(iova);
  const steps: WalkStep[] = [];
  let table = BigInt(ttbr);
  for (let level = 4n - levels; level <= 3n; level++) {
    const shift = g + (3n - level) * stride;
    const bits = level === 4n - levels ? BigInt(ias) - shift : stride;
    const index = (va >> shift) & ((1n << bits) - 1n);
    const gpa = Number(table + index * 8n);
    const pte = memory.readU64(gpa);
    steps.push({ level: Number(level), gpa, pte });
    if ((pte & 1n) === 0n || level === 3n || (pte & 3n) === 1n) break;
    table = pte & 0x0000_ffff_ffff_f000n;
  }
  return steps;
}

/** The leaf descriptor of `iova`, or undefined when the walk ends on an invalid entry. */
export function leafOf(fixture: LpaeFixture, iova: number): WalkStep | undefined {
  const arm = fixture.cfg.vendor.arm!;
  const steps = referenceWalk(fixture.memory, arm.ttbr, arm.granule, fixture.cfg.ias, iova);
  const last = steps[steps.length - 1]!;
  return (last.pte & 1n) === 1n ? last : undefined;
}
