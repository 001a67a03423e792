/**
 * The request queue as the driver drives it: request slots in guest RAM, many requests made
 * available before one notification, and a bounded wait for the used ring.
 */
import {
  type DriverQueueApi,
  type GuestMemory,
  hex,
  type PageAllocator,
  type Segment,
  VmmError,
} from '@vmmkit/core';
import { RequestSize } from '../protocol/constants.js';
import { STATUS_NOT_WRITTEN } from './request-error.js';

/** Bytes reserved per request slot: the largest request (ATTACH_TABLE, 88) rounded up. */
export const SLOT_SIZE = 128;

/** Most waits the driver makes for one batch before declaring the device unresponsive. */
export const DEFAULT_MAX_WAITS = 10_000;
/** Longest a batch may wait for the device, in milliseconds, before it is declared unresponsive. */
export const DEFAULT_WAIT_TIMEOUT_MS = 10_000;
/** Looks at the used ring before a waiting driver blocks (see `CompletionWait.pollSpins`). */
export const DEFAULT_POLL_SPINS = 20_000;

/**
 * How the platform lets the driver wait for the device. `wait` is called while requests are
 * outstanding and nothing was used yet; a worker-thread vCPU blocks on its interrupt word there.
 * Without `wait` the driver runs inline: the device answered during the notification already,
 * so finding nothing used means it will never answer.
 */
export interface CompletionWait {
  wait?: () => void;
  /**
   * Looks at the used ring this many times before blocking in `wait` (default 20 000, about
   * 0.1 ms). Linux polls the request queue the same way (viommu_sync_req spins on
   * virtqueue_get_buf): a device on another thread usually answers within a microsecond, far
   * sooner than a blocked thread wakes up, and no interrupt has to be raised or acknowledged.
   */
  pollSpins?: number;
  /** Bound on `wait` calls per batch (default 10 000). */
  maxWaits?: number;
  /** Bound on the time spent waiting per batch, in ms (default 10 000). */
  timeoutMs?: number;
}

/** What the driver does around waits: acknowledge the interrupt after each, handle events after the batch. */
export interface RingHooks {
  /** After every `wait()` (the driver acknowledges the interrupt so the line drops). */
  afterWait?: () => void;
  /** After a submitter read its results (`settle`), outside the ring's busy section. */
  afterSubmit?: () => void;
}

/** Result of a single large request (PROBE): how much the device wrote, and the writable bytes. */
export interface LargeRequestResult {
  usedLength: number;
  written: Uint8Array;
}

export class RequestRing {
  /** Requests that fit in the queue at once (two descriptors each). */
  readonly capacity: number;
  private readonly slotBase: number;
  private readonly slots: Uint8Array;
  /** The slot area as 32-bit words (null if its bank sits at an unaligned offset of its buffer). */
  private readonly slotWords: Int32Array | null;
  /** The staging buffer of the batch being submitted, and its words (kept while it stays the same). */
  private staging: Uint8Array = new Uint8Array(0);
  private stagingWords: Int32Array = new Int32Array(0);
  /** Read lengths and statuses of the batch being submitted (for `onUsedSlot`). */
  private readLengths: Uint8Array = new Uint8Array(0);
  private statuses: Uint8Array = new Uint8Array(0);
  /** Records the status of a used request slot (one function for every batch: no closure per call). */
  private readonly onUsedSlot = (token: unknown, len: number): void => {
    const slot = token as number;
    const index = this.slotRequest[slot]!;
    const readable = this.readLengths[index]!;
    // virtio 1.2 §5.13.6.1: a used length of 0 means the device did not write the request.
    this.statuses[index] =
      len < RequestSize.TAIL ? STATUS_NOT_WRITTEN : this.slots[slot * SLOT_SIZE + readable]!;
  };
  private readonly readSegs: Segment[][];
  private readonly writeSegs: Segment[][];
  /** Batch index of the request in each slot. */
  private readonly slotRequest: Int32Array;
  private readonly maxWaits: number;
  private readonly timeoutMs: number;
  private readonly pollSpins: number;
  private brokenReason: string | null = null;
  private busy = false;

  constructor(
    private readonly memory: GuestMemory,
    private readonly allocator: PageAllocator,
    private readonly queue: DriverQueueApi,
    private readonly kick: () => void,
    private readonly waiter: CompletionWait = {},
    private readonly hooks: RingHooks = {},
  ) {
    this.capacity = Math.max(1, Math.floor(queue.size / 2));
    this.slotBase = allocator.alloc(this.capacity * SLOT_SIZE);
    this.slots = memory.view(this.slotBase, this.capacity * SLOT_SIZE, 'write');
    this.slotWords =
      this.slots.byteOffset % 4 === 0
        ? new Int32Array(this.slots.buffer, this.slots.byteOffset, (this.capacity * SLOT_SIZE) >>> 2)
        : null;
    this.readSegs = [];
    this.writeSegs = [];
    for (let i = 0; i < this.capacity; i++) {
      this.readSegs.push([{ addr: this.slotBase + i * SLOT_SIZE, len: 0 }]);
      this.writeSegs.push([{ addr: 0, len: RequestSize.TAIL }]);
    }
    this.slotRequest = new Int32Array(this.capacity);
    this.maxWaits = waiter.maxWaits ?? DEFAULT_MAX_WAITS;
    this.timeoutMs = waiter.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
    this.pollSpins = waiter.pollSpins ?? DEFAULT_POLL_SPINS;
    // Used-buffer interrupts of the request queue are wanted only while the driver blocks in
    // `wait` (Linux gives the queue no callback at all); an inline driver never blocks.
    queue.suppressInterrupts(true);
  }

  /** Frees the slot area once the device is reset; the ring refuses requests afterwards. */
  release(): void {
    if (this.brokenReason === 'released') return;
    this.brokenReason = 'released';
    this.allocator.free(this.slotBase);
  }

  /** Set once the device failed to answer; the queue then holds buffers it may still write. */
  get broken(): string | null {
    return this.brokenReason;
  }

  /**
   * Submits `count` requests staged in `staging` at a stride of `SLOT_SIZE` (readable part of
   * `readLengths[i]` bytes each). Every request that fits is made available before one
   * notification; statuses land in `statuses[i]` (`STATUS_NOT_WRITTEN` for used length 0).
   */
  submit(staging: Uint8Array, readLengths: Uint8Array, count: number, statuses: Uint8Array): void {
    this.enter();
    try {
      if (staging !== this.staging) {
        this.staging = staging;
        this.stagingWords = new Int32Array(staging.buffer, staging.byteOffset, staging.length >>> 2);
      }
      this.readLengths = readLengths;
      this.statuses = statuses;
      this.submitChunks(staging, readLengths, count);
    } finally {
      this.leave();
    }
  }

  private submitChunks(staging: Uint8Array, readLengths: Uint8Array, count: number): void {
    let next = 0;
    while (next < count) {
      const chunk = Math.min(count - next, this.capacity, Math.floor(this.queue.freeCount / 2));
      if (chunk === 0) throw this.fail('no free descriptors in the request queue');
      const slots = this.slots;
      const slotWords = this.slotWords;
      const stagingWords = this.stagingWords;
      for (let i = 0; i < chunk; i++) {
        const readable = readLengths[next + i]!;
        // Only the request and its tail travel, by a loop: a few dozen bytes are cheaper to copy
        // than a subarray to `set` from (guest RAM is shared memory, where small sets are slow).
        // Every request is a whole number of 32-bit words, so they go word by word.
        const from = (next + i) * SLOT_SIZE;
        const to = i * SLOT_SIZE;
        const bytes = readable + RequestSize.TAIL;
        if (slotWords !== null && (bytes & 3) === 0) {
          for (let k = (bytes >>> 2) - 1; k >= 0; k--)
            slotWords[(to >>> 2) + k] = stagingWords[(from >>> 2) + k]!;
        } else {
          for (let k = bytes - 1; k >= 0; k--) slots[to + k] = staging[from + k]!;
        }
        const slot = this.slotBase + i * SLOT_SIZE;
        this.readSegs[i]![0]!.len = readable;
        this.writeSegs[i]![0]!.addr = slot + readable;
        this.slotRequest[i] = next + i;
        // virtio 1.2 §5.13.6.1: the tail is device-writable and starts zeroed by the copy above.
        this.queue.add(this.readSegs[i]!, this.writeSegs[i]!, i);
      }
      this.notifyAndWait(chunk, this.onUsedSlot);
      next += chunk;
    }
  }

  /** One request with its own buffers (PROBE: a large writable part); waits for it like a batch. */
  submitLarge(readable: Uint8Array, writableLength: number): LargeRequestResult {
    this.enter();
    try {
      return this.submitOne(readable, writableLength);
    } finally {
      this.leave();
    }
  }

  private submitOne(readable: Uint8Array, writableLength: number): LargeRequestResult {
    const total = readable.length + writableLength;
    const gpa = this.allocator.alloc(total);
    try {
      this.memory.write(gpa, readable);
      let usedLength = 0;
      this.queue.add(
        [{ addr: gpa, len: readable.length }],
        [{ addr: gpa + readable.length, len: writableLength }],
        -1,
      );
      this.notifyAndWait(1, (_token, len) => {
        usedLength = len;
      });
      return { usedLength, written: this.memory.read(gpa + readable.length, writableLength) };
    } finally {
      if (this.brokenReason === null) this.allocator.free(gpa);
    }
  }

  private notifyAndWait(expected: number, onUsed: (token: unknown, len: number) => void): void {
    if (this.queue.kickNeeded()) this.kick();
    let done = this.queue.collect(onUsed);
    let waits = 0;
    let started = 0;
    const wait = this.waiter.wait;
    if (wait !== undefined) {
      for (let spin = this.pollSpins; done < expected && spin > 0; spin--) done += this.queue.collect(onUsed);
    }
    while (done < expected) {
      if (wait === undefined) {
        throw this.fail(
          `the device answered ${done} of ${expected} requests during the notification (inline mode: it will not answer later)`,
        );
      }
      if (waits >= this.maxWaits) {
        throw this.fail(
          `the device answered ${done} of ${expected} requests after ${waits} waits`,
          'ETIMEDOUT',
        );
      }
      if (waits === 0) started = performance.now();
      else if (performance.now() - started > this.timeoutMs) {
        throw this.fail(
          `the device answered ${done} of ${expected} requests in ${this.timeoutMs} ms (${waits} waits)`,
          'ETIMEDOUT',
        );
      }
      try {
        // Interrupts on, then one more look (virtio 1.2 §2.7.10): a buffer used before the
        // device could see the request for an interrupt raises none.
        this.queue.suppressInterrupts(false);
        const seen = this.queue.collect(onUsed);
        if (seen > 0) {
          this.queue.suppressInterrupts(true);
          done += seen;
          continue;
        }
        wait();
        this.queue.suppressInterrupts(true);
        this.hooks.afterWait?.();
      } catch (error) {
        // Requests are still in flight: the queue cannot be trusted for the next batch.
        this.brokenReason = `the wait hook threw (${error instanceof Error ? error.message : String(error)})`;
        throw error;
      }
      waits++;
      done += this.queue.collect(onUsed);
    }
  }

  private enter(): void {
    if (this.busy) {
      // A fault listener or TLB callback that submits while a batch waits would reuse its slots.
      throw new VmmError(
        'EBUSY',
        'virtio-iommu request queue busy: a request was submitted while another batch waits',
      );
    }
    if (this.brokenReason === 'released') {
      throw new VmmError(
        'EINVAL',
        'the virtio-iommu driver was closed; create a new driver to use the device again',
      );
    }
    if (this.brokenReason !== null) {
      throw new VmmError(
        'EIO',
        `virtio-iommu request queue unusable: ${this.brokenReason}; reset the device`,
      );
    }
    this.busy = true;
  }

  private leave(): void {
    this.busy = false;
  }

  /**
   * Called by the submitter once it has read its results: runs the driver's after-submit work
   * (fault events noted while waiting), which may itself submit.
   */
  settle(): void {
    if (!this.busy) this.hooks.afterSubmit?.();
  }

  private fail(reason: string, code: 'EIO' | 'ETIMEDOUT' = 'EIO'): VmmError {
    this.brokenReason = reason;
    return new VmmError(code, `virtio-iommu request queue at slot area ${hex(this.slotBase)}: ${reason}`);
  }
}
