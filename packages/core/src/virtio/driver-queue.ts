import { hex, VmmError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { PageAllocator } from '../memory/page-allocator.js';
import {
  AVAIL_FLAGS as AVAIL_FLAGS_,
  AVAIL_IDX as AVAIL_IDX_,
  AVAIL_RING as AVAIL_RING_,
  availEventOffset,
  availRingBytes,
  DESC_SIZE as DESC_SIZE_,
  descTableBytes,
  layoutProblem,
  MAX_CHAIN_BUFFERS,
  needEvent as needEvent_,
  USED_ELEM_SIZE as USED_ELEM_SIZE_,
  USED_FLAGS as USED_FLAGS_,
  USED_IDX as USED_IDX_,
  USED_RING as USED_RING_,
  usedEventOffset,
  usedRingBytes,
  VIRTQ_AVAIL_F_NO_INTERRUPT as VIRTQ_AVAIL_F_NO_INTERRUPT_,
  VIRTQ_DESC_F_INDIRECT as VIRTQ_DESC_F_INDIRECT_,
  VIRTQ_DESC_F_NEXT as VIRTQ_DESC_F_NEXT_,
  VIRTQ_DESC_F_WRITE as VIRTQ_DESC_F_WRITE_,
  VIRTQ_USED_F_NO_NOTIFY as VIRTQ_USED_F_NO_NOTIFY_,
} from './layout.js';
import type { DriverQueueApi } from './queue-api.js';
import { RingArea } from './ring-area.js';
import type { QueueFeatures, QueueLayout, Segment } from './types.js';

// Local copies of the ring constants: some module loaders (vitest's, tsx) turn imported
// bindings into getter calls, which would dominate the hot paths below.
const AVAIL_FLAGS = AVAIL_FLAGS_;
const needEvent = needEvent_;
const AVAIL_IDX = AVAIL_IDX_;
const AVAIL_RING = AVAIL_RING_;
const DESC_SIZE = DESC_SIZE_;
const USED_ELEM_SIZE = USED_ELEM_SIZE_;
const USED_FLAGS = USED_FLAGS_;
const USED_IDX = USED_IDX_;
const USED_RING = USED_RING_;
const VIRTQ_AVAIL_F_NO_INTERRUPT = VIRTQ_AVAIL_F_NO_INTERRUPT_;
const VIRTQ_DESC_F_INDIRECT = VIRTQ_DESC_F_INDIRECT_;
const VIRTQ_DESC_F_NEXT = VIRTQ_DESC_F_NEXT_;
const VIRTQ_DESC_F_WRITE = VIRTQ_DESC_F_WRITE_;
const VIRTQ_USED_F_NO_NOTIFY = VIRTQ_USED_F_NO_NOTIFY_;

export interface DriverQueueOptions {
  /**
   * Where indirect descriptor tables come from. With it (and INDIRECT_DESC negotiated) a chain
   * that needs more descriptors than are free goes into an indirect table.
   */
  allocator?: PageAllocator;
}

const NO_TABLE = -1;
const TWO_POW_32 = 0x100000000;

/**
 * Guest-driver side of a split virtqueue (virtio 1.2 §2.7), as a guest kernel's virtio_ring.
 * The constructor zeroes the ring. Bookkeeping (free list, chain links, tokens) lives in JS
 * arrays, not in the ring, so whatever the device writes cannot corrupt it.
 */
export class DriverQueue implements DriverQueueApi {
  readonly size: number;
  readonly layout: QueueLayout;
  readonly features: QueueFeatures;
  private readonly memory: GuestMemory;
  private readonly allocator: PageAllocator | undefined;
  private readonly desc: RingArea;
  private readonly avail: RingArea;
  private readonly used: RingArea;
  private readonly mask: number;
  private readonly usedEventAt: number;
  private readonly availEventAt: number;
  /** Free descriptor indexes, used as a stack. */
  private readonly freeStack: Uint16Array;
  private freeTop: number;
  /** Next descriptor of each in-flight chain, mirrored from what was written to the table. */
  private readonly link: Uint16Array;
  /** Direct descriptors held by the chain at each head (0 = head not in flight). */
  private readonly chainDescs: Uint16Array;
  private readonly indirectTable: Float64Array;
  private readonly tokens: unknown[];
  private availIdx = 0;
  private lastUsed = 0;
  private kickedAt = 0;
  private brokenReason: string | null = null;
  private interruptsSuppressed = false;

  constructor(
    memory: GuestMemory,
    layout: QueueLayout,
    features: QueueFeatures,
    options: DriverQueueOptions = {},
  ) {
    const problem = layoutProblem(layout);
    if (problem !== null) throw new VmmError('EINVAL', `invalid queue layout: ${problem}`, { ...layout });
    const { size } = layout;
    const desc = RingArea.resolve(memory, layout.descTable, descTableBytes(size), 'write');
    const avail = RingArea.resolve(memory, layout.availRing, availRingBytes(size), 'write');
    const used = RingArea.resolve(memory, layout.usedRing, usedRingBytes(size), 'read');
    if (desc === null || avail === null || used === null) {
      throw new VmmError('EFAULT', `each part of the ${size}-entry queue must lie in one writable RAM bank`, {
        ...layout,
      });
    }
    this.memory = memory;
    this.allocator = options.allocator;
    this.layout = { ...layout };
    this.features = { eventIdx: features.eventIdx, indirect: features.indirect };
    this.size = size;
    this.mask = size - 1;
    this.usedEventAt = usedEventOffset(size);
    this.availEventAt = availEventOffset(size);
    this.desc = desc;
    this.avail = avail;
    this.used = used;
    memory.fill(layout.descTable, descTableBytes(size), 0);
    memory.fill(layout.availRing, availRingBytes(size), 0);
    memory.fill(layout.usedRing, usedRingBytes(size), 0);
    this.freeStack = new Uint16Array(size);
    for (let i = 0; i < size; i++) this.freeStack[i] = size - 1 - i;
    this.freeTop = size;
    this.link = new Uint16Array(size);
    this.chainDescs = new Uint16Array(size);
    this.indirectTable = new Float64Array(size).fill(NO_TABLE);
    this.tokens = new Array(size).fill(undefined);
  }

  get freeCount(): number {
    return this.freeTop;
  }

  get pendingUsed(): number {
    return (this.used.loadU16(USED_IDX) - this.lastUsed) & 0xffff;
  }

  /** Set when the device returned something impossible (an id that is not in flight). */
  get broken(): boolean {
    return this.brokenReason !== null;
  }

  /** The available index published last. */
  get availIndex(): number {
    return this.availIdx;
  }

  add(readable: readonly Segment[], writable: readonly Segment[], token: unknown): number {
    if (this.brokenReason !== null) {
      throw new VmmError('EINVAL', `the queue is broken (${this.brokenReason}); reset the device`);
    }
    const count = readable.length + writable.length;
    if (count === 0) throw new VmmError('EINVAL', 'a chain needs at least one buffer');
    const total = checkedLength(readable) + checkedLength(writable);
    // virtio 1.2 §2.7.5.2: a chain must not be longer than 2^32 bytes.
    if (total > TWO_POW_32) throw new VmmError('EINVAL', `chain of ${total} bytes exceeds 4 GiB`);
    const useIndirect =
      this.features.indirect &&
      this.allocator !== undefined &&
      count > 1 &&
      count > this.freeTop &&
      this.freeTop > 0;
    if (useIndirect) return this.addIndirect(readable, writable, count, token);
    if (count > this.freeTop) {
      throw new VmmError(
        'ENOMEM',
        `chain of ${count} descriptors does not fit: ${this.freeTop} of ${this.size} free (collect used buffers first)`,
        { count, free: this.freeTop },
      );
    }
    const head = this.freeStack[this.freeTop - 1]!;
    let index = head;
    let written = 0;
    const view = this.desc.view;
    for (let part = 0; part < 2; part++) {
      const list = part === 0 ? readable : writable;
      const flags = part === 0 ? 0 : VIRTQ_DESC_F_WRITE;
      for (let i = 0; i < list.length; i++) {
        this.freeTop--;
        written++;
        const last = written === count;
        const next = last ? 0 : this.freeStack[this.freeTop - 1]!;
        const seg = list[i]!;
        writeDescriptor(
          view,
          this.desc.offset + DESC_SIZE * index,
          seg.addr,
          seg.len,
          last ? flags : flags | VIRTQ_DESC_F_NEXT,
          next,
        );
        this.link[index] = next;
        index = next;
      }
    }
    this.chainDescs[head] = count;
    this.tokens[head] = token;
    this.publish(head);
    return head;
  }

  private addIndirect(
    readable: readonly Segment[],
    writable: readonly Segment[],
    count: number,
    token: unknown,
  ): number {
    // Devices accept at most max(queue size, 1024) buffers per chain (MAX_CHAIN_BUFFERS, QEMU's
    // limit; virtio 1.2 §2.7.5.3.1 would even stop at the queue size).
    const limit = Math.max(this.size, MAX_CHAIN_BUFFERS);
    if (count > limit) {
      throw new VmmError('EINVAL', `a chain may hold at most ${limit} descriptors, not ${count}`);
    }
    const bytes = count * DESC_SIZE;
    const table = this.allocator!.alloc(bytes);
    const scratch = new DataView(new ArrayBuffer(bytes));
    let i = 0;
    for (const s of readable) {
      writeDescriptor(
        scratch,
        DESC_SIZE * i,
        s.addr,
        s.len,
        i + 1 < count ? VIRTQ_DESC_F_NEXT : 0,
        i + 1 < count ? i + 1 : 0,
      );
      i++;
    }
    for (const s of writable) {
      const flags = VIRTQ_DESC_F_WRITE | (i + 1 < count ? VIRTQ_DESC_F_NEXT : 0);
      writeDescriptor(scratch, DESC_SIZE * i, s.addr, s.len, flags, i + 1 < count ? i + 1 : 0);
      i++;
    }
    this.memory.write(table, new Uint8Array(scratch.buffer));
    const head = this.freeStack[--this.freeTop]!;
    writeDescriptor(
      this.desc.view,
      this.desc.offset + DESC_SIZE * head,
      table,
      bytes,
      VIRTQ_DESC_F_INDIRECT,
      0,
    );
    this.chainDescs[head] = 1;
    this.indirectTable[head] = table;
    this.tokens[head] = token;
    this.publish(head);
    return head;
  }

  /** virtio 1.2 §2.7.13: ring entry first, then the index that makes it visible. */
  private publish(head: number): void {
    const avail = this.avail;
    avail.view.setUint16(avail.offset + AVAIL_RING + 2 * (this.availIdx & this.mask), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    avail.storeU16(AVAIL_IDX, this.availIdx);
  }

  kickNeeded(): boolean {
    const next = this.availIdx;
    const old = this.kickedAt;
    if (next === old) return false;
    this.kickedAt = next;
    if (this.features.eventIdx) {
      // virtio 1.2 §2.7.10: kick only when avail.idx passed avail_event.
      return needEvent(this.used.loadU16(this.availEventAt), next, old);
    }
    // virtio 1.2 §2.7.10: kick unless the device set VIRTQ_USED_F_NO_NOTIFY.
    return (this.used.loadU16(USED_FLAGS) & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  collect(fn: (token: unknown, len: number) => void): number {
    const used = this.used;
    let count = 0;
    // Each round consumes in-flight chains only (anything else breaks the queue), so this ends.
    for (;;) {
      const usedIdx = used.loadU16(USED_IDX);
      while (this.lastUsed !== usedIdx) {
        const at = used.offset + USED_RING + USED_ELEM_SIZE * (this.lastUsed & this.mask);
        const id = used.view.getUint32(at, true);
        const len = used.view.getUint32(at + 4, true);
        if (id >= this.size || this.chainDescs[id] === 0) {
          this.brokenReason = `device returned used id ${id}, which is not an in-flight head`;
          throw new VmmError('EFAULT', `${this.brokenReason} (queue at ${hex(this.layout.descTable)})`, {
            id,
          });
        }
        this.lastUsed = (this.lastUsed + 1) & 0xffff;
        const token = this.release(id);
        count++;
        fn(token, len);
      }
      if (!this.features.eventIdx || this.interruptsSuppressed) return count;
      // Ask for an interrupt at the next used buffer (Linux's virtqueue_enable_cb), then look
      // again: an element published before the device could see used_event raises none
      // (virtio 1.2 §2.7.10).
      this.avail.storeU16(this.usedEventAt, this.lastUsed);
      if (used.loadU16(USED_IDX) === this.lastUsed) return count;
    }
  }

  /**
   * Asks the device to hold back used-buffer interrupts (`true`) or to send them again.
   * Without EVENT_IDX this is the VIRTQ_AVAIL_F_NO_INTERRUPT flag; with it, `used_event` is
   * moved half the index space away so that it is not crossed soon (and `collect` stops re-arming it).
   */
  suppressInterrupts(suppress: boolean): void {
    this.interruptsSuppressed = suppress;
    if (this.features.eventIdx) {
      this.avail.storeU16(this.usedEventAt, suppress ? (this.lastUsed + 0x8000) & 0xffff : this.lastUsed);
      return;
    }
    this.avail.storeU16(AVAIL_FLAGS, suppress ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0);
  }

  private release(head: number): unknown {
    const token = this.tokens[head];
    this.tokens[head] = undefined;
    let index = head;
    for (let n = this.chainDescs[head]!; n > 0; n--) {
      this.freeStack[this.freeTop++] = index;
      index = this.link[index]!;
    }
    this.chainDescs[head] = 0;
    const table = this.indirectTable[head]!;
    if (table !== NO_TABLE) {
      this.indirectTable[head] = NO_TABLE;
      this.allocator!.free(table);
    }
    return token;
  }
}

/** Total bytes of `segments`, each checked to have a safe address and a u32 length. */
function checkedLength(segments: readonly Segment[]): number {
  let total = 0;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (
      !Number.isSafeInteger(s.addr) ||
      s.addr < 0 ||
      !Number.isInteger(s.len) ||
      s.len < 0 ||
      s.len >= TWO_POW_32
    ) {
      throw new VmmError(
        'EINVAL',
        `buffer ${String(s.addr)}+${String(s.len)} needs a safe address and a u32 length`,
      );
    }
    total += s.len;
  }
  return total;
}

function writeDescriptor(
  view: DataView,
  at: number,
  addr: number,
  len: number,
  flags: number,
  next: number,
): void {
  // `>>> 0` is the address modulo 2^32, exact for safe integers (and no floating-point fmod).
  const low = addr >>> 0;
  view.setUint32(at, low, true);
  view.setUint32(at + 4, (addr - low) / TWO_POW_32, true);
  view.setUint32(at + 8, len, true);
  view.setUint16(at + 12, flags, true);
  view.setUint16(at + 14, next, true);
}
