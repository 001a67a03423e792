import type { Segment } from './types.js';

/**
 * The device's view of one descriptor chain popped from the available ring. The queue reuses
 * one instance for every pop (no allocation per request): read what you need before the next
 * `pop()`.
 */
export interface DescriptorChain {
  /** Head descriptor index; give it back to `pushUsed`. */
  readonly head: number;
  /** Device-readable buffers in chain order, every one checked to lie in guest RAM. */
  readonly readable: readonly Segment[];
  readonly readableCount: number;
  /** Total bytes of the readable part. */
  readonly readableLength: number;
  /** Device-writable buffers in chain order. */
  readonly writable: readonly Segment[];
  readonly writableCount: number;
  readonly writableLength: number;
  /** Copies up to `target.length` bytes of the readable part, starting `offset` bytes in; returns bytes copied. */
  readInto(target: Uint8Array, offset?: number): number;
  /** Writes `source` into the writable part starting `offset` bytes in; returns bytes written. */
  writeFrom(source: Uint8Array, offset?: number): number;
}

/** Why a chain was refused; the device returns its buffers with used length 0. */
export type ChainErrorKind =
  | 'head-out-of-range'
  | 'next-out-of-range'
  | 'loop'
  | 'readable-after-writable'
  | 'nested-indirect'
  | 'indirect-not-negotiated'
  | 'indirect-bad-length'
  | 'indirect-with-next'
  | 'buffer-not-in-ram'
  | 'chain-too-long';

export type PopResult =
  | { ok: true; chain: DescriptorChain }
  | { ok: false; head: number; error: ChainErrorKind; detail: string };

/** Device side of a split virtqueue (virtio 1.2 §2.7), treating the ring as hostile. */
export interface DeviceQueueApi {
  readonly size: number;
  /** Set once the ring was found broken (avail index ran more than `size` ahead); no more pops. */
  readonly broken: boolean;
  /** Next chain, `null` when the available ring is empty (or the queue is broken). */
  pop(): PopResult | null;
  /** Returns a chain to the driver with the number of bytes written. */
  pushUsed(head: number, len: number): void;
  /** Whether the driver wants an interrupt for what was pushed since the last call (EVENT_IDX aware). */
  needsInterrupt(): boolean;
  /** Re-enable/disable driver notifications (used-ring flags or avail_event). */
  enableNotifications(enable: boolean): void;
}

/** Driver side of a split virtqueue, as a guest driver uses it. */
export interface DriverQueueApi {
  readonly size: number;
  /** Free descriptors. */
  readonly freeCount: number;
  /**
   * Adds a chain (readable buffers first, then writable) and makes it available; returns the head.
   * `token` is handed back by `collect`. Throws ENOSPC-like `ENOMEM` when too few descriptors are free.
   */
  add(readable: readonly Segment[], writable: readonly Segment[], token: unknown): number;
  /** Whether the device asked to be notified about what was added since the last kick. */
  kickNeeded(): boolean;
  /** Calls `fn` for each used element, in order, and frees its descriptors; returns how many. */
  collect(fn: (token: unknown, len: number) => void): number;
  /** Used elements not collected yet. */
  readonly pendingUsed: number;
  /**
   * Asks the device to hold back used-buffer interrupts (`true`) or to send them again
   * (virtio 1.2 §2.7.10: VIRTQ_AVAIL_F_NO_INTERRUPT, or `used_event` with EVENT_IDX).
   */
  suppressInterrupts(suppress: boolean): void;
}
