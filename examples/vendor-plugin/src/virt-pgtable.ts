import {
  hex,
  IommuProt,
  type IoPgtableCfg,
  type IoPgtableFormat,
  type IoPgtableOps,
  type IotlbGather,
  VmmError,
} from '@vmmkit/core';
import {
  entryAddress,
  INPUT_BITS,
  LEVELS,
  levelIndex,
  levelShift,
  OUTPUT_BITS,
  PAGE_SIZE_BITMAP,
  PTE_READ,
  PTE_TABLE,
  PTE_VALID,
  PTE_WRITE,
  TABLE_BYTES,
  VIRT_FORMAT_NAME,
  VIRT_TABLE_FORMAT,
} from './virt-format.js';

declare module '@vmmkit/core' {
  interface IoPgtableVendorConfigs {
    /** Output of the `virt` format: the guest-physical address of the level-0 table. */
    virt: { pgd: number };
  }
}

const PAGE = 0x1000;

/**
 * Guest side of the `virt` format: builds the tables in guest memory through the caller's page
 * allocator, as a Linux io-pgtable driver would, and asks for TLB maintenance through the
 * flush callbacks of the core interface.
 */
class VirtPgtable implements IoPgtableOps {
  private readonly pgd: number;
  private readonly word = new Uint32Array(2);

  constructor(readonly cfg: IoPgtableCfg) {
    this.pgd = cfg.allocator.alloc(TABLE_BYTES, TABLE_BYTES);
    cfg.vendor.virt = { pgd: this.pgd };
  }

  map(iova: number, pa: number, size: number, prot: number): void {
    this.checkRange(iova, size, 'map');
    if (!Number.isSafeInteger(pa) || pa < 0 || pa % PAGE !== 0 || pa + size > 2 ** this.cfg.oas) {
      throw new VmmError(
        'EINVAL',
        `output ${hex(pa)}+${hex(size)} must be 4 KiB aligned and below 2^${this.cfg.oas}`,
      );
    }
    if ((prot & (IommuProt.READ | IommuProt.WRITE)) === 0) {
      throw new VmmError('EINVAL', 'a mapping needs IommuProt.READ or IommuProt.WRITE');
    }
    const leafBits =
      PTE_VALID | (prot & IommuProt.READ ? PTE_READ : 0) | (prot & IommuProt.WRITE ? PTE_WRITE : 0);
    // Check the whole range first so a refused map changes nothing.
    for (let done = 0; done < size; ) {
      const step = this.chunk(iova + done, pa + done, size - done);
      if (this.occupied(iova + done, step)) {
        throw new VmmError('EEXIST', `${hex(iova + done)} is already mapped; unmap it first`, {
          iova: iova + done,
        });
      }
      done += step;
    }
    for (let done = 0; done < size; ) {
      const step = this.chunk(iova + done, pa + done, size - done);
      this.install(iova + done, pa + done, step, leafBits);
      done += step;
    }
  }

  unmap(iova: number, size: number, gather?: IotlbGather): number {
    this.checkRange(iova, size, 'unmap');
    // Refuse before touching anything when the range cuts through a block (as Linux does).
    for (let at = iova; at < iova + size; ) {
      const leaf = this.findLeaf(at);
      if (leaf === null) {
        at = nextBoundary(at, PAGE);
        continue;
      }
      const start = at - (at % leaf.size);
      if (start < iova || start + leaf.size > iova + size) {
        throw new VmmError(
          'EINVAL',
          `unmapping ${hex(iova)}+${hex(size)} would split the ${hex(leaf.size)} block at ${hex(start)}`,
        );
      }
      at = start + leaf.size;
    }
    let unmapped = 0;
    for (let at = iova; at < iova + size; ) {
      const leaf = this.findLeaf(at);
      if (leaf === null) {
        at = nextBoundary(at, PAGE);
        continue;
      }
      this.cfg.memory.writeU64Pair(leaf.entry, 0, 0);
      if (gather) this.cfg.tlb.addPage(gather, at, leaf.size);
      else this.cfg.tlb.flushWalk(at, leaf.size, leaf.size);
      unmapped += leaf.size;
      at += leaf.size;
    }
    return unmapped;
  }

  iovaToPhys(iova: number): number | null {
    if (!Number.isSafeInteger(iova) || iova < 0 || iova >= 2 ** this.cfg.ias) return null;
    const leaf = this.findLeaf(iova);
    return leaf === null ? null : leaf.output + (iova % leaf.size);
  }

  free(): void {
    this.freeTable(this.pgd, 0);
  }

  /** The largest page or block that fits the alignment of both addresses and the remaining size. */
  private chunk(iova: number, pa: number, remaining: number): number {
    for (const size of [2 ** 30, 2 ** 21, PAGE]) {
      if ((this.cfg.pgsizeBitmap & size) !== 0 && iova % size === 0 && pa % size === 0 && remaining >= size)
        return size;
    }
    return PAGE;
  }

  private leafLevel(size: number): number {
    return size === 2 ** 30 ? 1 : size === 2 ** 21 ? 2 : 3;
  }

  /** Whether anything is mapped in `[iova, iova + size)`. */
  private occupied(iova: number, size: number): boolean {
    for (let at = iova; at < iova + size; at += PAGE) {
      if (this.findLeaf(at) !== null) return true;
    }
    return false;
  }

  private install(iova: number, pa: number, size: number, leafBits: number): void {
    const memory = this.cfg.memory;
    const target = this.leafLevel(size);
    let table = this.pgd;
    for (let level = 0; level < target; level++) {
      const entry = table + levelIndex(iova, level) * 8;
      memory.readU64Pair(entry, this.word);
      const [lo, hi] = this.word;
      if ((lo! & PTE_VALID) === 0) {
        const next = this.cfg.allocator.alloc(TABLE_BYTES, TABLE_BYTES);
        memory.writeU64Pair(entry, (next % 2 ** 32) | PTE_VALID | PTE_TABLE, Math.floor(next / 2 ** 32));
        table = next;
      } else {
        table = entryAddress(lo!, hi!);
      }
    }
    const entry = table + levelIndex(iova, target) * 8;
    const old = memory.readU32(entry);
    if ((old & (PTE_VALID | PTE_TABLE)) === (PTE_VALID | PTE_TABLE)) {
      // An empty table left by earlier unmaps gives way to the block; walkers may cache it.
      memory.writeU64Pair(entry, 0, 0);
      this.freeTable(entryAddress(old, memory.readU32(entry + 4)), target + 1);
      this.cfg.tlb.flushWalk(iova, size, size);
    }
    memory.writeU64Pair(entry, ((pa % 2 ** 32) | leafBits) >>> 0, Math.floor(pa / 2 ** 32));
  }

  private findLeaf(iova: number): { entry: number; output: number; size: number } | null {
    const memory = this.cfg.memory;
    let table = this.pgd;
    for (let level = 0; level < LEVELS; level++) {
      const entry = table + levelIndex(iova, level) * 8;
      memory.readU64Pair(entry, this.word);
      const lo = this.word[0]!;
      const hi = this.word[1]!;
      if ((lo & PTE_VALID) === 0) return null;
      if ((lo & PTE_TABLE) === 0 || level === LEVELS - 1) {
        const size = 2 ** levelShift(level);
        return { entry, output: entryAddress(lo, hi) - (entryAddress(lo, hi) % size), size };
      }
      table = entryAddress(lo, hi);
    }
    return null;
  }

  private freeTable(table: number, level: number): void {
    if (level < LEVELS - 1) {
      for (let i = 0; i < 512; i++) {
        this.cfg.memory.readU64Pair(table + i * 8, this.word);
        const lo = this.word[0]!;
        if ((lo & (PTE_VALID | PTE_TABLE)) === (PTE_VALID | PTE_TABLE)) {
          this.freeTable(entryAddress(lo, this.word[1]!), level + 1);
        }
      }
    }
    this.cfg.allocator.free(table);
  }

  private checkRange(iova: number, size: number, what: string): void {
    if (!Number.isSafeInteger(iova) || iova < 0 || iova % PAGE !== 0) {
      throw new VmmError(
        'EINVAL',
        `${what}: IOVA ${String(iova)} must be a 4 KiB aligned non-negative integer`,
      );
    }
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE !== 0) {
      throw new VmmError('EINVAL', `${what}: size ${String(size)} must be a positive multiple of 4 KiB`);
    }
    if (iova + size > 2 ** this.cfg.ias) {
      throw new VmmError(
        'ERANGE',
        `${what}: ${hex(iova)}+${hex(size)} is beyond the ${this.cfg.ias}-bit input range`,
      );
    }
  }
}

function nextBoundary(at: number, size: number): number {
  return at - (at % size) + size;
}

/** The `virt` io-pgtable format, as the plugin registers it. */
export const virtPgtableFormat: IoPgtableFormat = {
  name: VIRT_FORMAT_NAME,
  vendor: 'virt',
  alloc(cfg) {
    if (cfg.ias > INPUT_BITS || cfg.oas > OUTPUT_BITS) {
      throw new VmmError(
        'EINVAL',
        `the virt format takes ias <= ${INPUT_BITS} and oas <= ${OUTPUT_BITS} (got ${cfg.ias}/${cfg.oas})`,
      );
    }
    const sizes = cfg.pgsizeBitmap & PAGE_SIZE_BITMAP;
    if ((sizes & PAGE) === 0) {
      throw new VmmError(
        'EINVAL',
        `the virt format needs 4 KiB pages in the page-size bitmap (got ${hex(cfg.pgsizeBitmap)})`,
      );
    }
    cfg.pgsizeBitmap = sizes;
    return new VirtPgtable(cfg);
  },
  attachDescriptor(cfg) {
    const pgd = cfg.vendor.virt?.pgd;
    if (pgd === undefined) throw new VmmError('EINVAL', 'allocate the virt table before describing it');
    // Bytes 16..83 of ATTACH_TABLE: le16 format @16, reserved @18..23, pgd le64 @24, reserved after.
    const payload = new Uint8Array(68);
    const view = new DataView(payload.buffer);
    view.setUint16(0, VIRT_TABLE_FORMAT, true);
    view.setBigUint64(8, BigInt(pgd), true);
    return { format: VIRT_TABLE_FORMAT, payload };
  },
  virtioIommuFormat: VIRT_TABLE_FORMAT,
};
