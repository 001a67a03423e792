import type { GuestMemory } from '../memory/guest-memory.js';
import { DeviceQueue } from '../virtio/device-queue.js';
import {
  AVAIL_FLAGS,
  AVAIL_IDX,
  AVAIL_RING,
  availEventOffset,
  DESC_SIZE,
  splitQueueBytes,
  splitQueueLayout,
  USED_ELEM_SIZE,
  USED_FLAGS,
  USED_IDX,
  USED_RING,
  usedEventOffset,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from '../virtio/layout.js';
import type { QueueFeatures, QueueLayout } from '../virtio/types.js';

/** A raw descriptor as a (possibly hostile) driver writes it. `addr` may exceed 2^53 as a bigint. */
export interface RawDescriptor {
  addr: number | bigint;
  len: number;
  flags?: number;
  next?: number;
}

/** A buffer of an ordinary chain for `MockSplitQueue.addChain`. */
export interface MockBuffer {
  addr: number;
  len: number;
  write?: boolean;
}

export interface UsedElement {
  id: number;
  len: number;
}

/**
 * A driver-side mock in the spirit of rust-vmm's `virtio-queue` `mock.rs`: it lays a split queue
 * in guest memory and lets a test write anything into it — well-formed chains or hostile
 * descriptors, ring entries and indexes — and read back what the device returned.
 * It keeps no bookkeeping beyond the next avail index, so tests stay in full control.
 */
export class MockSplitQueue {
  readonly layout: QueueLayout;
  private nextAvail = 0;

  constructor(
    readonly memory: GuestMemory,
    base: number,
    readonly size: number,
  ) {
    this.layout = splitQueueLayout(base, size);
    memory.fill(base, splitQueueBytes(size), 0);
  }

  /** A device queue over this ring. */
  deviceQueue(features: Partial<QueueFeatures> = {}, onBroken?: (reason: string) => void): DeviceQueue {
    return new DeviceQueue(
      this.memory,
      this.layout,
      { eventIdx: features.eventIdx ?? false, indirect: features.indirect ?? false },
      onBroken,
    );
  }

  /** Writes descriptor `index` of the descriptor table (no checks: any value goes). */
  writeDescriptor(index: number, d: RawDescriptor): void {
    writeRawDescriptor(this.memory, this.layout.descTable + DESC_SIZE * index, d);
  }

  /** Writes a descriptor table (e.g. an indirect one) at `gpa`. */
  writeTable(gpa: number, descriptors: readonly RawDescriptor[]): void {
    descriptors.forEach((d, i) => {
      writeRawDescriptor(this.memory, gpa + DESC_SIZE * i, d);
    });
  }

  /** Writes `avail.ring[slot]` (slot taken modulo the size). */
  setAvailEntry(slot: number, head: number): void {
    this.memory.writeU16(this.layout.availRing + AVAIL_RING + 2 * (slot % this.size), head);
  }

  /** Writes `avail.idx` (and remembers it as the next index for `pushAvail`). */
  setAvailIdx(idx: number): void {
    this.nextAvail = idx & 0xffff;
    this.memory.writeU16(this.layout.availRing + AVAIL_IDX, this.nextAvail);
  }

  get availIdx(): number {
    return this.memory.readU16(this.layout.availRing + AVAIL_IDX);
  }

  /** Makes `head` available: ring entry, then the index. */
  pushAvail(head: number): void {
    this.setAvailEntry(this.nextAvail, head);
    this.setAvailIdx(this.nextAvail + 1);
  }

  setAvailFlags(flags: number): void {
    this.memory.writeU16(this.layout.availRing + AVAIL_FLAGS, flags);
  }

  setUsedEvent(value: number): void {
    this.memory.writeU16(this.layout.availRing + usedEventOffset(this.size), value);
  }

  /**
   * Writes an ordinary chain into descriptors `start, start+1, …` (readable buffers must come
   * first for a well-formed chain, but nothing is checked) and makes it available. Returns the head.
   */
  addChain(buffers: readonly MockBuffer[], start = 0): number {
    buffers.forEach((b, i) => {
      const last = i === buffers.length - 1;
      const index = (start + i) % this.size;
      this.writeDescriptor(index, {
        addr: b.addr,
        len: b.len,
        flags: (b.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT),
        next: last ? 0 : (index + 1) % this.size,
      });
    });
    this.pushAvail(start % this.size);
    return start % this.size;
  }

  get usedIdx(): number {
    return this.memory.readU16(this.layout.usedRing + USED_IDX);
  }

  get usedFlags(): number {
    return this.memory.readU16(this.layout.usedRing + USED_FLAGS);
  }

  get availEvent(): number {
    return this.memory.readU16(this.layout.usedRing + availEventOffset(this.size));
  }

  /** The used element at free-running index `i` (taken modulo the size). */
  usedElement(i: number): UsedElement {
    const at = this.layout.usedRing + USED_RING + USED_ELEM_SIZE * (i % this.size);
    return { id: this.memory.readU32(at), len: this.memory.readU32(at + 4) };
  }

  /** Every used element from index `from` up to the current used index. */
  usedSince(from: number): UsedElement[] {
    const out: UsedElement[] = [];
    for (let i = from; i !== this.usedIdx; i = (i + 1) & 0xffff) out.push(this.usedElement(i));
    return out;
  }
}

function writeRawDescriptor(memory: GuestMemory, gpa: number, d: RawDescriptor): void {
  const addr = BigInt.asUintN(64, BigInt(d.addr));
  memory.writeU32(gpa, Number(addr & 0xffffffffn));
  memory.writeU32(gpa + 4, Number(addr >> 32n));
  memory.writeU32(gpa + 8, d.len >>> 0);
  memory.writeU16(gpa + 12, (d.flags ?? 0) & 0xffff);
  memory.writeU16(gpa + 14, (d.next ?? 0) & 0xffff);
}
