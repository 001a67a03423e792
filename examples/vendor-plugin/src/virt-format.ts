/**
 * The "virt" I/O page table (virtio-iommu table format 3, PROTOCOL.md), shared by the guest
 * io-pgtable and the host walker of this plugin: 4 levels of 512 little-endian 8-byte entries,
 * 48-bit input addresses, outputs up to 52 bits.
 *
 * Entry bits: 0 VALID, 1 TABLE, 2 READ, 3 WRITE. VALID+TABLE points at the next table (bits
 * 51:12); VALID alone is a leaf: a 1 GiB block at level 1, 2 MiB at level 2, 4 KiB at level 3.
 */
export const VIRT_TABLE_FORMAT = 3;
export const VIRT_FORMAT_NAME = 'virt';

export const PTE_VALID = 1 << 0;
export const PTE_TABLE = 1 << 1;
export const PTE_READ = 1 << 2;
export const PTE_WRITE = 1 << 3;

export const LEVELS = 4;
export const ENTRIES = 512;
export const TABLE_BYTES = 4096;
export const INPUT_BITS = 48;
export const OUTPUT_BITS = 52;
/** 4 KiB pages, 2 MiB and 1 GiB blocks (the only bitmap the Linux side accepts). */
export const PAGE_SIZE_BITMAP = 0x4020_1000;

/** Bits of the input address that a level's index covers start here (L0 47:39 … L3 20:12). */
export function levelShift(level: number): number {
  return 12 + 9 * (LEVELS - 1 - level);
}

/** Index into the table of `level` for `iova` (safe for IOVAs up to 2^53). */
export function levelIndex(iova: number, level: number): number {
  return Math.floor(iova / 2 ** levelShift(level)) % ENTRIES;
}

/** Mask of the output address of an entry: bits 51:12 of the 64-bit word, as halves. */
export const ADDR_HI_MASK = 0x000f_ffff;
export const ADDR_LO_MASK = 0xffff_f000;

export function entryAddress(lo: number, hi: number): number {
  return (hi & ADDR_HI_MASK) * 2 ** 32 + ((lo & ADDR_LO_MASK) >>> 0);
}
