import { hex, VmmError } from '../errors.js';
import type { MemoryBank } from '../memory/bank.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { ReusableChain } from './chain.js';
import { ChainWalker } from './chain-walker.js';
import {
  AVAIL_FLAGS as AVAIL_FLAGS_,
  AVAIL_IDX as AVAIL_IDX_,
  AVAIL_RING as AVAIL_RING_,
  availEventOffset,
  availRingBytes,
  descTableBytes,
  layoutProblem,
  needEvent as needEvent_,
  USED_ELEM_SIZE as USED_ELEM_SIZE_,
  USED_FLAGS as USED_FLAGS_,
  USED_IDX as USED_IDX_,
  USED_RING as USED_RING_,
  usedEventOffset,
  usedRingBytes,
  VIRTQ_AVAIL_F_NO_INTERRUPT as VIRTQ_AVAIL_F_NO_INTERRUPT_,
  VIRTQ_USED_F_NO_NOTIFY as VIRTQ_USED_F_NO_NOTIFY_,
} from './layout.js';
import type { DeviceQueueApi, PopResult } from './queue-api.js';
import { RingArea } from './ring-area.js';
import type { QueueFeatures, QueueLayout } from './types.js';

// Local copies of the ring constants: some module loaders (vitest's, tsx) turn imported
// bindings into getter calls, which would dominate the hot paths below.
const AVAIL_FLAGS = AVAIL_FLAGS_;
const needEvent = needEvent_;
const AVAIL_IDX = AVAIL_IDX_;
const AVAIL_RING = AVAIL_RING_;
const USED_ELEM_SIZE = USED_ELEM_SIZE_;
const USED_FLAGS = USED_FLAGS_;
const USED_IDX = USED_IDX_;
const USED_RING = USED_RING_;
const VIRTQ_AVAIL_F_NO_INTERRUPT = VIRTQ_AVAIL_F_NO_INTERRUPT_;
const VIRTQ_USED_F_NO_NOTIFY = VIRTQ_USED_F_NO_NOTIFY_;

/** Segment objects created up front; more are added only for unusually long chains. */
const INITIAL_SEGMENTS = 64;

/**
 * Device side of a split virtqueue (virtio 1.2 §2.7), for a device model on the host.
 *
 * Everything the driver wrote is treated as hostile: a pop never throws, accepts at most
 * max(queue size, 1024) buffer descriptors per chain (so a walk is bounded whatever an indirect
 * table claims), and returns only buffers that lie in
 * guest RAM. Malformed chains come back as `{ ok: false }` results; an available index that runs
 * ahead by more than the queue size breaks the queue for good (the transport then asks for a
 * device reset through `onBroken`).
 *
 * Typical device loop, so no available-buffer notification is lost:
 * ```ts
 * do {
 *   q.enableNotifications(false);
 *   for (let r = q.pop(); r !== null; r = q.pop()) q.pushUsed(r.ok ? r.chain.head : r.head, handle(r));
 *   q.enableNotifications(true);
 * } while (q.hasAvailable());
 * if (q.needsInterrupt()) activation.notifyUsed(index);
 * ```
 */
export class DeviceQueue implements DeviceQueueApi {
  readonly size: number;
  readonly layout: QueueLayout;
  readonly features: QueueFeatures;
  private readonly memory: GuestMemory;
  private readonly onBroken: ((reason: string) => void) | undefined;
  private readonly avail: RingArea;
  private readonly used: RingArea;
  private readonly usedEventAt: number;
  private readonly availEventAt: number;
  private readonly chain: ReusableChain;
  private readonly walker: ChainWalker;
  private readonly okResult: { ok: true; chain: ReusableChain };
  private readonly sizeMask: number;
  private lastAvail = 0;
  private nextUsed = 0;
  /** `used.idx` at the last `needsInterrupt` call: the `old` of the EVENT_IDX rule. */
  private signalledUsed = 0;
  /** Chains popped and not yet returned. */
  private inFlight = 0;
  private notificationsOn = true;
  /** Notifications held off by a polling host, whatever the device asks (`holdNotifications`). */
  private held = false;
  /** Last value written to avail_event (-1: none), to skip redundant stores. */
  private availEventPublished = -1;
  private brokenReason: string | null = null;
  private readonly onBankRemoved: (bank: MemoryBank) => void;

  constructor(
    memory: GuestMemory,
    layout: QueueLayout,
    features: QueueFeatures,
    onBroken?: (reason: string) => void,
  ) {
    const problem = layoutProblem(layout);
    if (problem !== null) throw new VmmError('EINVAL', `invalid queue layout: ${problem}`, { ...layout });
    const { size } = layout;
    const desc = RingArea.resolve(memory, layout.descTable, descTableBytes(size), 'read');
    const avail = RingArea.resolve(memory, layout.availRing, availRingBytes(size), 'read');
    const used = RingArea.resolve(memory, layout.usedRing, usedRingBytes(size), 'write');
    if (desc === null || avail === null || used === null) {
      const which = desc === null ? 'descriptor table' : avail === null ? 'available ring' : 'used ring';
      throw new VmmError(
        'EFAULT',
        `the ${which} of a ${size}-entry queue is not inside one ${which === 'used ring' ? 'writable ' : ''}RAM bank`,
        { ...layout },
      );
    }
    this.memory = memory;
    this.layout = { ...layout };
    this.features = { eventIdx: features.eventIdx, indirect: features.indirect };
    this.onBroken = onBroken;
    this.size = size;
    this.sizeMask = size - 1;
    this.avail = avail;
    this.used = used;
    this.usedEventAt = usedEventOffset(size);
    this.availEventAt = availEventOffset(size);
    this.chain = new ReusableChain(memory, Math.min(size, INITIAL_SEGMENTS));
    this.walker = new ChainWalker(memory, desc, size, features.indirect, this.chain);
    this.okResult = { ok: true, chain: this.chain };
    // A ring whose bank is unplugged must not be touched again (the views would outlive the bank).
    this.onBankRemoved = (bank) => {
      this.chain.forgetBank(bank);
      if (bank === desc.bank || bank === avail.bank || bank === used.bank) {
        this.markBroken(`the RAM bank at ${hex(bank.gpa)} holding the ring was removed`);
      }
    };
    // Both ring indexes start at 0 when a queue is set up (virtio 1.2 §2.7.13, §2.7.8); the
    // driver zeroed the ring, and whatever else it left there is not trusted.
    memory.on('bankRemoved', this.onBankRemoved);
  }

  get broken(): boolean {
    return this.brokenReason !== null;
  }

  /** Why the queue broke, or `null`. */
  get brokenBecause(): string | null {
    return this.brokenReason;
  }

  /** The available index the device will read next (`last_avail_idx`). */
  get nextAvailIndex(): number {
    return this.lastAvail;
  }

  /** The used index the device will publish next. */
  get nextUsedIndex(): number {
    return this.nextUsed;
  }

  /** Chains popped and not yet given back with `pushUsed`. */
  get inFlightCount(): number {
    return this.inFlight;
  }

  /** Whether the driver made buffers available that were not popped yet. */
  hasAvailable(): boolean {
    if (this.brokenReason !== null) return false;
    return this.avail.loadU16(AVAIL_IDX) !== this.lastAvail;
  }

  /** Stops using the ring (transport reset): no more pops, pushes or bank-removal tracking. */
  dispose(): void {
    this.memory.off('bankRemoved', this.onBankRemoved);
    if (this.brokenReason === null) this.brokenReason = 'the queue was disposed';
  }

  /**
   * The next chain, or `null` once the available ring is empty. Call it until it returns `null`:
   * with EVENT_IDX that last call re-arms the driver's notification (avail_event).
   */
  pop(): PopResult | null {
    if (this.brokenReason !== null) return null;
    let availIdx = this.avail.loadU16(AVAIL_IDX);
    if (availIdx === this.lastAvail) {
      if (
        !this.features.eventIdx ||
        !this.notificationsOn ||
        this.held ||
        this.availEventPublished === this.lastAvail
      )
        return null;
      // virtio 1.2 §2.7.10: drained, so ask to be notified about the next entry, then look
      // again in case the driver added one before it could see that (the atomic store and load
      // are the full barrier this needs).
      this.publishAvailEvent();
      availIdx = this.avail.loadU16(AVAIL_IDX);
      if (availIdx === this.lastAvail) return null;
    }
    const pending = (availIdx - this.lastAvail) & 0xffff;
    if (pending > this.size) {
      // virtio 1.2 §2.7.6: the ring has `size` entries, so no more than that can be outstanding;
      // an index further ahead is a broken driver (rust-vmm's InvalidAvailRingIndex).
      this.markBroken(
        `available index ${availIdx} is ${pending} entries ahead of ${this.lastAvail}, more than the queue size ${this.size}`,
      );
      return null;
    }
    const slot = this.lastAvail & this.sizeMask;
    const head = this.avail.view.getUint16(this.avail.offset + AVAIL_RING + 2 * slot, true);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    this.inFlight++;
    const error = this.walker.walk(head);
    if (error === null) return this.okResult;
    return { ok: false, head, error, detail: this.walker.errorDetail };
  }

  private publishAvailEvent(): void {
    this.availEventPublished = this.lastAvail;
    this.used.storeU16(this.availEventAt, this.lastAvail);
  }

  /**
   * Returns the chain whose head the driver placed in the available ring, with `len` bytes
   * written into its writable part. Every popped entry must be returned exactly once — refused
   * chains too (`PopResult.ok === false`): give them back with `len` 0 so the driver gets its
   * descriptors back (virtio 1.2 §2.7.8: the device must not report more bytes than it wrote).
   * After the queue broke this does nothing: the driver has to reset the device anyway.
   */
  pushUsed(head: number, len: number): void {
    if (this.brokenReason !== null) return;
    if (!Number.isInteger(head) || head < 0 || head > 0xffff) {
      throw new VmmError('EINVAL', `used head ${String(head)} is not a descriptor index from pop()`, {
        head,
      });
    }
    if (!Number.isInteger(len) || len < 0 || len > 0xffffffff) {
      throw new VmmError('EINVAL', `used length ${String(len)} must be an integer from 0 to 2^32-1`, { len });
    }
    if (this.inFlight === 0) {
      throw new VmmError('EINVAL', `pushUsed(${head}) without a popped chain to return`, { head });
    }
    this.inFlight--;
    const used = this.used;
    const at = used.offset + USED_RING + USED_ELEM_SIZE * (this.nextUsed & this.sizeMask);
    used.view.setUint32(at, head, true);
    used.view.setUint32(at + 4, len, true);
    this.nextUsed = (this.nextUsed + 1) & 0xffff;
    // virtio 1.2 §2.7.8.2: the element is written before the index that publishes it.
    used.storeU16(USED_IDX, this.nextUsed);
  }

  needsInterrupt(): boolean {
    if (this.brokenReason !== null) return false;
    const next = this.nextUsed;
    const old = this.signalledUsed;
    if (next === old) return false;
    this.signalledUsed = next;
    if (this.features.eventIdx) {
      // virtio 1.2 §2.7.10: notify only when used.idx passed used_event; ring flags are ignored.
      return needEvent(this.avail.loadU16(this.usedEventAt), next, old);
    }
    // virtio 1.2 §2.7.7.2: notify unless the driver set VIRTQ_AVAIL_F_NO_INTERRUPT.
    return (this.avail.loadU16(AVAIL_FLAGS) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  enableNotifications(enable: boolean): void {
    if (this.brokenReason !== null) return;
    this.notificationsOn = enable;
    this.applyNotifications();
  }

  /**
   * While a host thread polls this queue (busy polling), available-buffer notifications stay
   * suppressed whatever `enableNotifications` asks; releasing the hold applies the device's own
   * choice again. After releasing, the caller must look at the ring once more (`hasAvailable`):
   * a buffer made available before the release raised no notification (virtio 1.2 §2.7.10).
   */
  holdNotifications(hold: boolean): void {
    if (this.brokenReason !== null) return;
    this.held = hold;
    this.applyNotifications();
  }

  private applyNotifications(): void {
    const enable = this.notificationsOn && !this.held;
    if (this.features.eventIdx) {
      // virtio 1.2 §2.7.10: with EVENT_IDX the used flags stay 0; avail_event says from where on
      // a notification is wanted. Disabling simply stops moving it forward.
      if (enable) this.publishAvailEvent();
      return;
    }
    this.used.storeU16(USED_FLAGS, enable ? 0 : VIRTQ_USED_F_NO_NOTIFY);
  }

  private markBroken(reason: string): void {
    if (this.brokenReason !== null) return;
    this.brokenReason = reason;
    this.memory.off('bankRemoved', this.onBankRemoved);
    this.onBroken?.(reason);
  }
}
