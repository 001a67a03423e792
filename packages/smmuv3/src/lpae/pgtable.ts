/**
 * An Arm LPAE stage-1 page table living in guest memory (Linux io-pgtable-arm.c, `map_pages`,
 * `unmap_pages`, `iova_to_phys`). The tables in memory are the only state: every walk reads the
 * descriptors back, exactly as the SMMU would.
 */
import {
  createIotlbGather,
  type GuestMemory,
  hex,
  IommuProt,
  type IoPgtableCfg,
  type IoPgtableOps,
  type IotlbGather,
  type MemoryBank,
  VmmError,
} from '@vmmkit/core';
import type { LpaeGeometry } from './geometry.js';
import {
  addrHi,
  addrLo,
  PTE_TYPE_BLOCK,
  PTE_TYPE_MASK,
  PTE_TYPE_PAGE,
  PTE_TYPE_TABLE,
  PTE_VALID,
  protToPte,
  pteAddr,
} from './pte.js';
import type { PgsizeSplitter } from './split.js';

/** `POW2[n]` = 2^n for the address sizes a table can have. */
const POW2: readonly number[] = Array.from({ length: 53 }, (_, n) => 2 ** n);

export class ArmLpaeS1Pgtable implements IoPgtableOps {
  private readonly memory: GuestMemory;
  private readonly inputLimit: number;
  private readonly outputLimit: number;
  private freed = false;
  /**
   * The last table reached below the start level, and the input region it covers: runs of map,
   * unmap and lookup in one region skip the upper levels. Dropped whenever any table is freed,
   * the only way a table stops being reachable (this object is the tables' only writer).
   */
  private walkLevel = -1;
  private walkRegion = -1;
  private walkTable = 0;

  constructor(
    readonly cfg: IoPgtableCfg,
    private readonly geometry: LpaeGeometry,
    private readonly pgd: number,
    /** Splits ranges into the page sizes the table uses (tables of one geometry share one). */
    private readonly splitter: PgsizeSplitter,
  ) {
    this.memory = cfg.memory;
    // Address sizes are at most 48 bits; a table of the lookup, as `2 **` of a variable is a call.
    this.inputLimit = POW2[cfg.ias] ?? 2 ** cfg.ias;
    this.outputLimit = POW2[cfg.oas] ?? 2 ** cfg.oas;
  }

  map(iova: number, pa: number, size: number, prot: number): void {
    this.checkLive();
    this.checkRange('map', iova, size, this.inputLimit, 'input');
    this.checkRange('map', pa, size, this.outputLimit, 'output');
    if ((prot & (IommuProt.READ | IommuProt.WRITE)) === 0) {
      // Current Linux refuses a mapping nobody can access (older kernels silently mapped nothing).
      throw new VmmError('EINVAL', `map of ${hex(iova)}: prot ${hex(prot)} grants neither READ nor WRITE`, {
        iova,
        prot,
      });
    }
    const attrs = protToPte(prot);
    let done = 0;
    try {
      while (done < size) {
        // Read out at once: the splitter's chunk is shared (and the TLB callbacks run foreign code).
        const chunk = this.splitter.split(iova + done, pa + done, size - done);
        const pgsize = chunk.pgsize;
        const count = chunk.count;
        const level = this.geometry.levelOf(pgsize);
        const mapped = this.mapRun(iova + done, pa + done, pgsize, count, level, attrs.lo, attrs.hi);
        done += mapped * pgsize;
      }
    } catch (error) {
      // Nothing half-applied: take back what this call installed before failing.
      if (done > 0) this.rollback(iova, done);
      throw error;
    }
  }

  unmap(iova: number, size: number, gather?: IotlbGather): number {
    this.checkLive();
    this.checkRange('unmap', iova, size, this.inputLimit, 'input');
    const into = gather ?? createIotlbGather();
    // A range of several entries could meet a partial block after having cleared others: look first.
    if (size > this.splitter.split(iova, iova, size).pgsize) this.unmapRange(iova, size, into, true);
    return this.unmapRange(iova, size, into, false);
  }

  iovaToPhys(iova: number): number | null {
    this.checkLive();
    if (!Number.isSafeInteger(iova) || iova < 0 || iova >= this.inputLimit) return null;
    const geometry = this.geometry;
    let table = this.pgd;
    let start = geometry.startLevel;
    const known = this.knownTable(iova);
    if (known >= 0) {
      table = known;
      start = this.walkLevel;
    }
    for (let level = start; level < 4; level++) {
      const slot = table + geometry.index(iova, level) * 8;
      const bank = this.bankOf(slot);
      const off = slot - bank.gpa;
      const lo = bank.view.getUint32(off, true);
      if ((lo & PTE_VALID) === 0) return null;
      const hi = bank.view.getUint32(off + 4, true);
      const type = lo & PTE_TYPE_MASK;
      if (level === 3) {
        // Level 3 type 0b01 is reserved: the walker faults on it.
        return type === PTE_TYPE_PAGE ? pteAddr(lo, hi) + (iova % geometry.granule) : null;
      }
      if (type === PTE_TYPE_BLOCK) return pteAddr(lo, hi) + (iova % geometry.blockSize[level]!);
      table = pteAddr(lo, hi);
    }
    return null;
  }

  free(): void {
    if (this.freed) return;
    this.freeTable(this.pgd, this.geometry.startLevel);
    this.freed = true;
  }

  /** Installs up to `count` leaves of `pgsize` at `level`, within one table; returns how many. */
  private mapRun(
    iova: number,
    pa: number,
    pgsize: number,
    count: number,
    level: number,
    attrLo: number,
    attrHi: number,
  ): number {
    const geometry = this.geometry;
    let table = level === this.walkLevel ? this.knownTable(iova) : -1;
    for (let l = table >= 0 ? level : geometry.startLevel; l < level; l++) {
      if (l === geometry.startLevel) table = this.pgd;
      const slot = table + geometry.index(iova, l) * 8;
      const bank = this.bankOf(slot);
      const off = slot - bank.gpa;
      const lo = bank.view.getUint32(off, true);
      if ((lo & PTE_VALID) === 0) {
        const allocator = this.cfg.allocator;
        const next = allocator.alloc(geometry.granule, geometry.granule);
        // The table is written (all entries invalid) before the descriptor that publishes it,
        // by the allocator when it zeroes its pages, else here.
        if (allocator.zeroesPages !== true) this.memory.fill(next, geometry.granule, 0);
        this.writePte(slot, addrLo(next) | PTE_TYPE_TABLE, addrHi(next));
        table = next;
      } else if ((lo & PTE_TYPE_MASK) === PTE_TYPE_TABLE) {
        table = pteAddr(lo, bank.view.getUint32(off + 4, true));
      } else {
        throw this.exists(iova, pgsize, geometry.blockSize[l]!);
      }
      if (l === level - 1) this.rememberTable(iova, level, table);
    }
    if (table < 0) table = this.pgd;
    const first = geometry.index(iova, level);
    const n = Math.min(count, geometry.entries[level]! - first);
    const type = level === 3 ? PTE_TYPE_PAGE : PTE_TYPE_BLOCK;
    for (let i = 0; i < n; i++) {
      const slot = table + (first + i) * 8;
      const lo = this.memory.readU32(slot);
      const at = iova + i * pgsize;
      if ((lo & PTE_VALID) !== 0) {
        if (level === 3 || (lo & PTE_TYPE_MASK) !== PTE_TYPE_TABLE) {
          if (i > 0) return i;
          throw this.exists(at, pgsize, pgsize);
        }
        // A table where a block goes: Linux frees it first. Refuse if it still maps anything.
        const child = pteAddr(lo, this.memory.readU32(slot + 4));
        if (this.tableMapsAnything(child, level + 1)) {
          if (i > 0) return i;
          throw this.exists(at, pgsize, geometry.blockSize[level + 1]!);
        }
        this.clearPte(slot);
        this.cfg.tlb.flushWalk(at, pgsize, geometry.granule);
        this.freeTable(child, level + 1);
      }
      const out = pa + i * pgsize;
      this.writePte(slot, (addrLo(out) | attrLo | type) >>> 0, (addrHi(out) | attrHi) >>> 0);
    }
    return n;
  }

  /** Linux `iommu_unmap` over `__arm_lpae_unmap`: stops at the first hole. `dryRun` only looks. */
  private unmapRange(iova: number, size: number, gather: IotlbGather, dryRun: boolean): number {
    let done = 0;
    while (done < size) {
      const chunk = this.splitter.split(iova + done, iova + done, size - done);
      const pgsize = chunk.pgsize;
      const count = chunk.count;
      const level = this.geometry.levelOf(pgsize);
      const cleared = this.unmapRun(iova + done, pgsize, count, level, gather, dryRun);
      if (cleared === 0) break;
      done += cleared * pgsize;
    }
    return done;
  }

  private unmapRun(
    iova: number,
    pgsize: number,
    count: number,
    level: number,
    gather: IotlbGather,
    dryRun: boolean,
  ): number {
    const geometry = this.geometry;
    let table = level === this.walkLevel ? this.knownTable(iova) : -1;
    for (let l = table >= 0 ? level : geometry.startLevel; l < level; l++) {
      if (l === geometry.startLevel) table = this.pgd;
      const slot = table + geometry.index(iova, l) * 8;
      const lo = this.memory.readU32(slot);
      if ((lo & PTE_VALID) === 0) return 0;
      if ((lo & PTE_TYPE_MASK) !== PTE_TYPE_TABLE) {
        const block = geometry.blockSize[l]!;
        const start = iova - (iova % block);
        // Current Linux refuses to split a block (older kernels rebuilt it as a table minus the hole).
        throw new VmmError(
          'EINVAL',
          `unmap of ${hex(iova)}+${hex(pgsize)} would cut the ${hex(block)} block at ${hex(start)}; unmap the whole block`,
          { iova, size: pgsize, blockIova: start, blockSize: block },
        );
      }
      table = pteAddr(lo, this.memory.readU32(slot + 4));
      if (l === level - 1) this.rememberTable(iova, level, table);
    }
    if (table < 0) table = this.pgd;
    const first = geometry.index(iova, level);
    const n = Math.min(count, geometry.entries[level]! - first);
    let i = 0;
    for (; i < n; i++) {
      const slot = table + (first + i) * 8;
      const lo = this.memory.readU32(slot);
      if ((lo & PTE_VALID) === 0) break;
      if (dryRun) continue;
      const at = iova + i * pgsize;
      this.clearPte(slot);
      if (level < 3 && (lo & PTE_TYPE_MASK) === PTE_TYPE_TABLE) {
        // Walk caches may hold the table being freed: flush them before its pages are reused.
        this.cfg.tlb.flushWalk(at, pgsize, geometry.granule);
        this.freeTable(pteAddr(lo, this.memory.readU32(slot + 4)), level + 1);
      } else {
        this.cfg.tlb.addPage(gather, at, pgsize);
      }
    }
    return i;
  }

  private rollback(iova: number, size: number): void {
    const gather = createIotlbGather();
    this.unmapRange(iova, size, gather, false);
    this.cfg.tlb.flushWalk(iova, size, this.geometry.granule);
  }

  /** Whether any valid leaf hangs below the table at `table` (of `level`). */
  private tableMapsAnything(table: number, level: number): boolean {
    const entries = this.geometry.entries[level]!;
    for (let i = 0; i < entries; i++) {
      const lo = this.memory.readU32(table + i * 8);
      if ((lo & PTE_VALID) === 0) continue;
      if (level === 3 || (lo & PTE_TYPE_MASK) !== PTE_TYPE_TABLE) return true;
      if (this.tableMapsAnything(pteAddr(lo, this.memory.readU32(table + i * 8 + 4)), level + 1)) return true;
    }
    return false;
  }

  /** Frees a table and every table below it (Linux `__arm_lpae_free_pgtable`). */
  private freeTable(table: number, level: number): void {
    this.walkLevel = -1;
    if (level < 3) {
      const entries = this.geometry.entries[level]!;
      // Every entry is looked at: read them through the bank's view, found once per table
      // (a 1024-PASID teardown reads half a million entries). A table that is not in one RAM
      // bank any more takes the checked accessor, which reports the hole.
      const bank = this.memory.ramBank(table, entries * 8);
      const view = bank === null ? null : bank.view;
      const at = bank === null ? 0 : table - bank.gpa;
      for (let i = 0; i < entries; i++) {
        const lo = view === null ? this.memory.readU32(table + i * 8) : view.getUint32(at + i * 8, true);
        if ((lo & PTE_VALID) === 0 || (lo & PTE_TYPE_MASK) !== PTE_TYPE_TABLE) continue;
        const hi =
          view === null ? this.memory.readU32(table + i * 8 + 4) : view.getUint32(at + i * 8 + 4, true);
        this.freeTable(pteAddr(lo, hi), level + 1);
      }
    }
    this.cfg.allocator.free(table);
  }

  /** The remembered table for `iova`, or -1. */
  private knownTable(iova: number): number {
    const level = this.walkLevel;
    if (level < 0 || Math.floor(iova / this.geometry.blockSize[level - 1]!) !== this.walkRegion) return -1;
    return this.walkTable;
  }

  private rememberTable(iova: number, level: number, table: number): void {
    this.walkLevel = level;
    this.walkRegion = Math.floor(iova / this.geometry.blockSize[level - 1]!);
    this.walkTable = table;
  }

  /** Leaves are written high half first, so a walker never pairs a valid low half with a stale high one. */
  private writePte(slot: number, lo: number, hi: number): void {
    const bank = this.bankOf(slot, 'write');
    const off = slot - bank.gpa;
    bank.view.setUint32(off + 4, hi, true);
    bank.view.setUint32(off, lo, true);
  }

  /** Cleared low half (with the valid bit) first, for the same reason. */
  private clearPte(slot: number): void {
    const bank = this.bankOf(slot, 'write');
    const off = slot - bank.gpa;
    bank.view.setUint32(off, 0, true);
    bank.view.setUint32(off + 4, 0, true);
  }

  private bankOf(slot: number, access: 'read' | 'write' = 'read'): MemoryBank {
    const bank = this.memory.ramBank(slot, 8, access);
    if (bank === null) {
      throw new VmmError(
        'EFAULT',
        `page-table entry at ${hex(slot)} is not in guest RAM (was a bank removed under the table?)`,
        { gpa: slot },
      );
    }
    return bank;
  }

  private checkRange(op: string, addr: number, size: number, limit: number, what: string): void {
    const min = this.splitter.minPgsize;
    if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(size) || addr < 0 || size <= 0) {
      throw new VmmError(
        'EINVAL',
        `${op}: ${what} address and size must be non-negative integers, size > 0`,
        {
          addr,
          size,
        },
      );
    }
    if (addr % min !== 0 || size % min !== 0) {
      throw new VmmError(
        'EINVAL',
        `${op} of ${hex(addr)}+${hex(size)}: ${what} address and size must be multiples of the ${hex(min)} granule`,
        { addr, size, granule: min },
      );
    }
    if (addr + size > limit) {
      throw new VmmError(
        'EINVAL',
        `${op} of ${hex(addr)}+${hex(size)} ends beyond the ${Math.log2(limit)}-bit ${what} address space`,
        { addr, size, bits: Math.log2(limit) },
      );
    }
  }

  private exists(iova: number, pgsize: number, existing: number): VmmError {
    return new VmmError(
      'EEXIST',
      `${hex(iova)} is already mapped (by a ${hex(existing)} entry); unmap it before mapping ${hex(pgsize)} there`,
      { iova, size: pgsize },
    );
  }

  private checkLive(): void {
    if (this.freed) throw new VmmError('EINVAL', 'this arm-lpae-s1 page table was freed');
  }
}
