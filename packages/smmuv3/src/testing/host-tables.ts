/**
 * Test and benchmark fixtures for the host model: guest RAM, a bump allocator, and a minimal
 * stage-1 table writer that lays descriptors out straight from the VMSAv8-64 format (written
 * independently of the walker, so tests compare two readings of the architecture).
 */
import { GuestMemory } from '@vmmkit/core';
import { type CdFields, encodeCd } from '../codec/cd.js';
import { encodeSte, type SteFields } from '../codec/ste.js';

export const RAM_BASE = 0x4000_0000;

export function createRam(size = 32 * 1024 * 1024, gpa = RAM_BASE): GuestMemory {
  const memory = new GuestMemory();
  memory.addBank({ gpa, size });
  return memory;
}

/** Hands out zeroed, naturally aligned chunks of RAM, upwards from `base`. */
export class BumpAllocator {
  constructor(
    private readonly memory: GuestMemory,
    private next: number,
  ) {}

  alloc(size: number, align = 4096): number {
    const at = Math.ceil(this.next / align) * align;
    this.next = at + size;
    this.memory.fill(at, size, 0);
    return at;
  }
}

/** Leaf attribute bits of a stage-1 descriptor (lower and upper attributes). */
export const Leaf = {
  AP_UNPRIV: 1n << 6n,
  AP_RDONLY: 1n << 7n,
  SH_IS: 3n << 8n,
  AF: 1n << 10n,
  NG: 1n << 11n,
  PXN: 1n << 53n,
  UXN: 1n << 54n,
} as const;

/** What Linux io-pgtable writes for an RW, unprivileged-accessible mapping (no XN). */
export const DEFAULT_LEAF_ATTRS = Leaf.AP_UNPRIV | Leaf.SH_IS | Leaf.AF | Leaf.NG;

export class S1Tables {
  readonly root: number;
  readonly stride: number;
  readonly startLevel: number;
  private readonly startShift: number;

  constructor(
    private readonly memory: GuestMemory,
    private readonly allocator: BumpAllocator,
    readonly granuleShift = 12,
    readonly inputBits = 48,
  ) {
    this.stride = granuleShift - 3;
    this.startLevel = 4 - Math.ceil((inputBits - granuleShift) / this.stride);
    this.startShift = this.shiftOf(this.startLevel);
    const rootBytes = Math.max(8 * 2 ** (inputBits - this.startShift), 64);
    this.root = allocator.alloc(rootBytes, Math.max(rootBytes, 64));
  }

  shiftOf(level: number): number {
    return this.granuleShift + (3 - level) * this.stride;
  }

  private index(iova: number, level: number): number {
    const bits = level === this.startLevel ? this.inputBits - this.startShift : this.stride;
    return Math.floor(iova / 2 ** this.shiftOf(level)) % 2 ** bits;
  }

  /** Address of the descriptor for `iova` at `level`, creating tables above it. */
  slot(iova: number, level: number): number {
    let table = this.root;
    for (let l = this.startLevel; l < level; l++) {
      const at = table + this.index(iova, l) * 8;
      const desc = this.memory.readU64(at);
      if ((desc & 3n) === 3n) {
        table = Number(desc & 0x0000_ffff_ffff_f000n);
      } else {
        const size = 2 ** this.granuleShift;
        const next = this.allocator.alloc(size, size);
        this.memory.writeU64(at, BigInt(next) | 3n);
        table = next;
      }
    }
    return table + this.index(iova, level) * 8;
  }

  /** Maps one page (level 3) or block (`level` < 3) of `iova` to `pa`. Returns the descriptor address. */
  map(iova: number, pa: number, level = 3, attrs: bigint = DEFAULT_LEAF_ATTRS): number {
    const at = this.slot(iova, level);
    this.memory.writeU64(at, BigInt(pa) | attrs | (level === 3 ? 3n : 1n));
    return at;
  }

  /** Writes a raw descriptor at `iova`'s slot of `level`. */
  writeRaw(iova: number, level: number, descriptor: bigint): number {
    const at = this.slot(iova, level);
    this.memory.writeU64(at, descriptor);
    return at;
  }
}

/** TG0 encoding of a granule shift. */
export function tg0Of(granuleShift: number): number {
  return granuleShift === 12 ? 0 : granuleShift === 16 ? 1 : 2;
}

/** The CD Linux would write for these tables (reference §2.5), with overrides. */
export function linuxCd(
  tables: Pick<S1Tables, 'inputBits' | 'granuleShift' | 'root'>,
  asid: number,
  overrides: Partial<CdFields> = {},
): Partial<CdFields> {
  return {
    t0sz: 64 - tables.inputBits,
    tg0: tg0Of(tables.granuleShift),
    irgn0: 1,
    orgn0: 1,
    sh0: 3,
    epd1: true,
    valid: true,
    ips: 5,
    aa64: true,
    r: true,
    a: true,
    aset: true,
    asid,
    ttb0: tables.root,
    mair: 0xf404ff44n,
    ...overrides,
  };
}

export function writeCd(memory: GuestMemory, at: number, fields: Partial<CdFields>): void {
  memory.write(at, encodeCd(fields));
}

/** The stage-1 STE Linux writes (reference §1.4), with overrides. */
export function linuxSte(overrides: Partial<SteFields>): Partial<SteFields> {
  return { valid: true, config: 5, s1cir: 1, s1cor: 1, s1csh: 3, s1dss: 2, ...overrides };
}

export function writeSte(memory: GuestMemory, at: number, fields: Partial<SteFields>): void {
  memory.write(at, encodeSte(fields));
}
