import { type GuestMemory, type PageAllocator, type Segment, VmmError } from '@vmmkit/core';

/** Readable bytes per batch slot (the largest request is 84 bytes). */
const SLOT_READABLE = 128;
/** Writable bytes per batch slot. */
const SLOT_WRITABLE = 64;
/** Guest memory for `submit`/`submitChain` buffers. */
const GENERAL_AREA = 256 * 1024;
/** Written over writable parts before submission, so tests see exactly what the device wrote. */
export const POISON = 0xa5;

interface Slot {
  readable: Segment[];
  writable: Segment[];
  writableLength: number;
}

/**
 * Guest RAM where the harness places requests, as a driver's kmalloc'ed buffers: one fixed slot
 * per queue entry for batches (segment objects reused), and a general area for single requests.
 */
export class RequestArena {
  readonly slots: number;
  private readonly slotBase: number;
  private readonly generalBase: number;
  private readonly slotList: Slot[] = [];
  private readonly tail = new Uint8Array(1);

  constructor(
    private readonly memory: GuestMemory,
    allocator: PageAllocator,
    slots: number,
  ) {
    this.slots = slots;
    this.slotBase = allocator.alloc(slots * (SLOT_READABLE + SLOT_WRITABLE));
    this.generalBase = allocator.alloc(GENERAL_AREA);
    for (let i = 0; i < slots; i++) {
      const base = this.slotBase + i * (SLOT_READABLE + SLOT_WRITABLE);
      this.slotList.push({
        readable: [{ addr: base, len: 0 }],
        writable: [{ addr: base + SLOT_READABLE, len: 0 }],
        writableLength: 0,
      });
    }
  }

  placeSlot(index: number, request: Uint8Array, writableLength: number): Slot {
    if (request.length > SLOT_READABLE || writableLength > SLOT_WRITABLE || writableLength < 0) {
      throw new VmmError(
        'EINVAL',
        `batch requests hold at most ${SLOT_READABLE} readable and ${SLOT_WRITABLE} writable bytes (use submit for larger ones)`,
      );
    }
    const slot = this.slotList[index]!;
    this.memory.write(slot.readable[0]!.addr, request);
    slot.readable[0]!.len = request.length;
    slot.writable[0]!.len = writableLength;
    slot.writableLength = writableLength;
    return slot;
  }

  /** The status byte of a completed batch slot (first byte of the tail at the end of its writable part). */
  slotStatus(index: number, usedLength: number): number {
    const slot = this.slotList[index]!;
    if (usedLength < 4 || slot.writableLength < 4) return 0xff;
    this.memory.readInto(slot.writable[0]!.addr + slot.writableLength - 4, this.tail);
    return this.tail[0]!;
  }

  /** Lays out one chain in the general area: readable buffers as given, writable ones poisoned. */
  placeChain(
    readable: readonly Uint8Array[],
    writableLengths: readonly number[],
  ): { readSegments: Segment[]; writeSegments: Segment[]; writableLength: number } {
    let at = this.generalBase;
    const end = this.generalBase + GENERAL_AREA;
    const take = (len: number): number => {
      const addr = at;
      at += Math.ceil(Math.max(len, 1) / 8) * 8;
      if (at > end) {
        throw new VmmError('EINVAL', `a submitted chain must fit ${GENERAL_AREA} bytes of staging memory`);
      }
      return addr;
    };
    const readSegments = readable.map((bytes) => {
      const addr = take(bytes.length);
      this.memory.write(addr, bytes);
      return { addr, len: bytes.length };
    });
    let writableLength = 0;
    const writeSegments = writableLengths.map((len) => {
      if (!Number.isInteger(len) || len < 0) {
        throw new VmmError('EINVAL', `writable lengths must be non-negative integers, got ${len}`);
      }
      const addr = take(len);
      if (len > 0) this.memory.fill(addr, len, POISON);
      writableLength += len;
      return { addr, len };
    });
    return { readSegments, writeSegments, writableLength };
  }
}
