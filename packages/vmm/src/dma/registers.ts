/**
 * Register map of the vmmkit DMA engine (`compatible = "vmmkit,dma-engine"`), a 4 KiB MMIO
 * window of little-endian 32-bit registers. Narrower accesses read the low bytes of a register;
 * unknown offsets read 0 and ignore writes.
 *
 * | Off   | Name          | Acc | Meaning |
 * |-------|---------------|-----|---------|
 * | 0x000 | MAGIC         | RO  | 0x45414d44 ("DMAE") |
 * | 0x004 | VERSION       | RO  | 1 |
 * | 0x008 | ENDPOINT      | RO  | endpoint ID the engine uses behind the IOMMU |
 * | 0x00c | CAPS          | RO  | bit 0 PASID capable; bits 8..12 PASID width in bits; bits 16..18 ops (COPY, FILL, CRC32) |
 * | 0x010 | SRC_LO/HI     | RW  | source IOVA, 64-bit as two words (0x010 low, 0x014 high) |
 * | 0x018 | DST_LO/HI     | RW  | destination IOVA (0x018 low, 0x01c high) |
 * | 0x020 | LENGTH        | RW  | bytes to move, 1..MAX_LENGTH |
 * | 0x024 | PASID         | RW  | bits 0..19 PASID, bit 31 PASID valid; other bits reserved (0) |
 * | 0x028 | OP            | RW  | 0 COPY src→dst, 1 FILL dst with FILL, 2 CRC32 of src into RESULT |
 * | 0x02c | FILL          | RW  | bits 0..7: the fill byte |
 * | 0x030 | DOORBELL      | WO  | write 1 to start the programmed transfer (a posted doorbell) |
 * | 0x034 | STATUS        | RO  | 0 IDLE, 1 BUSY, 2 DONE, 3 ERROR |
 * | 0x038 | ERROR         | RO  | `DmaError` of the last transfer |
 * | 0x03c | RESULT        | RO  | CRC-32 (IEEE 802.3 / zlib, reflected 0xEDB88320, init and xorout ~0) of the source |
 * | 0x040 | FAULT_ADDR    | RO  | IOVA of the first byte that could not be accessed (0x040 low, 0x044 high) |
 * | 0x048 | FAULT_REASON  | RO  | the IOMMU's fault reason (virtio-iommu reasons, PROTOCOL.md) on ERROR TRANSLATION |
 * | 0x04c | BYTES_DONE    | RO  | bytes transferred (or checksummed) before completion or fault |
 * | 0x050 | IRQ_STATUS    | RO  | bit 0 DONE, bit 1 ERROR |
 * | 0x054 | IRQ_ACK       | WO  | write-1-to-clear IRQ_STATUS bits; the line drops when none is left |
 * | 0x058 | CTRL          | RW  | bit 0 interrupt enable |
 * | 0x05c | COMPLETED     | RO  | transfers finished (done or error), modulo 2^32 |
 * | 0x060 | FAULT_ACCESS  | RO  | 0 the fault was on a read (source), 1 on a write (destination) |
 *
 * A transfer runs to completion inside the doorbell write: every 4 KiB page of the source and
 * destination IOVA ranges is translated (endpoint, PASID when valid) before it is touched,
 * data moves page by page, and the first refused page stops the transfer with what was moved
 * so far left in place (as a real engine would). Overlapping source and destination ranges
 * are copied forwards, page by page (memcpy semantics: the result is unspecified).
 */
export const DmaReg = {
  MAGIC: 0x000,
  VERSION: 0x004,
  ENDPOINT: 0x008,
  CAPS: 0x00c,
  SRC_LO: 0x010,
  SRC_HI: 0x014,
  DST_LO: 0x018,
  DST_HI: 0x01c,
  LENGTH: 0x020,
  PASID: 0x024,
  OP: 0x028,
  FILL: 0x02c,
  DOORBELL: 0x030,
  STATUS: 0x034,
  ERROR: 0x038,
  RESULT: 0x03c,
  FAULT_ADDR_LO: 0x040,
  FAULT_ADDR_HI: 0x044,
  FAULT_REASON: 0x048,
  BYTES_DONE: 0x04c,
  IRQ_STATUS: 0x050,
  IRQ_ACK: 0x054,
  CTRL: 0x058,
  COMPLETED: 0x05c,
  FAULT_ACCESS: 0x060,
} as const;

export const DMA_MAGIC = 0x45414d44;
export const DMA_VERSION = 1;
export const DMA_WINDOW_SIZE = 0x1000;
export const DMA_COMPATIBLE = 'vmmkit,dma-engine';
/** Longest transfer one doorbell may ask for (a transfer runs inside the doorbell write). */
export const DMA_MAX_LENGTH = 64 * 1024 * 1024;

export const DmaOp = { COPY: 0, FILL: 1, CRC32: 2 } as const;
export type DmaOp = (typeof DmaOp)[keyof typeof DmaOp];

export const DmaStatus = { IDLE: 0, BUSY: 1, DONE: 2, ERROR: 3 } as const;

export const DmaError = {
  NONE: 0,
  /** The IOMMU refused a page (it reports the fault itself, e.g. a virtio-iommu fault report). */
  TRANSLATION: 1,
  BAD_OP: 2,
  BAD_LENGTH: 3,
  /** The IOMMU translated the page to an address that is not (writable) RAM. */
  BUS: 4,
  /** PASID register: valid bit set on an engine without PASIDs, a PASID too wide, or reserved bits set. */
  BAD_PASID: 5,
  /** An IOVA range that runs past 2^64. */
  RANGE: 6,
} as const;

export const DmaIrq = { DONE: 1, ERROR: 2 } as const;
export const DMA_CTRL_IRQ_ENABLE = 1;
export const DMA_PASID_VALID = 0x8000_0000;
export const DMA_PASID_MASK = 0x000f_ffff;
