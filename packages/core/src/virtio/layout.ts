import { hex, VmmError } from '../errors.js';
import type { QueueLayout } from './types.js';

/** Largest split queue the spec allows (virtio 1.2 §2.7: Queue Size is at most 32768). */
export const MAX_QUEUE_SIZE = 32768;
/**
 * Most buffers a chain may hold through an indirect table: QEMU's VIRTQUEUE_MAX_SIZE, the
 * tolerance real drivers rely on (virtio 1.2 §2.7.5.3.1 says the queue size; Linux exceeds it
 * with indirect tables).
 */
export const MAX_CHAIN_BUFFERS = 1024;

/** Descriptor flags (virtio 1.2 §2.7.5). */
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
/** Avail ring flag: the driver does not want used-buffer notifications (virtio 1.2 §2.7.7). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** Used ring flag: the device does not want available-buffer notifications (virtio 1.2 §2.7.10). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Bytes of one descriptor: addr le64, len le32, flags le16, next le16. */
export const DESC_SIZE = 16;
/** Required alignment of each ring part (virtio 1.2 §2.7, table "Virtqueue Part Alignment"). */
export const DESC_ALIGN = 16;
export const AVAIL_ALIGN = 2;
export const USED_ALIGN = 4;

/** Byte offsets inside the driver area (available ring). */
export const AVAIL_FLAGS = 0;
export const AVAIL_IDX = 2;
export const AVAIL_RING = 4;
/** Byte offsets inside the device area (used ring). */
export const USED_FLAGS = 0;
export const USED_IDX = 2;
export const USED_RING = 4;
export const USED_ELEM_SIZE = 8;

/** Size of the descriptor table of a queue of `size` entries. */
export function descTableBytes(size: number): number {
  return DESC_SIZE * size;
}

/** Size of the driver area: flags, idx, ring[size], used_event. */
export function availRingBytes(size: number): number {
  return 6 + 2 * size;
}

/** Size of the device area: flags, idx, ring[size] of {id, len}, avail_event. */
export function usedRingBytes(size: number): number {
  return 6 + 8 * size;
}

/** Offset of `used_event` from the start of the driver area (only meaningful with EVENT_IDX). */
export function usedEventOffset(size: number): number {
  return AVAIL_RING + 2 * size;
}

/** Offset of `avail_event` from the start of the device area (only meaningful with EVENT_IDX). */
export function availEventOffset(size: number): number {
  return USED_RING + USED_ELEM_SIZE * size;
}

/** Whether `size` is a queue size the split ring allows: a power of two from 1 to 32768. */
export function isValidQueueSize(size: number): boolean {
  return Number.isInteger(size) && size >= 1 && size <= MAX_QUEUE_SIZE && (size & (size - 1)) === 0;
}

function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}

function checkSize(size: number): void {
  if (!isValidQueueSize(size)) {
    throw new VmmError(
      'EINVAL',
      `queue size ${String(size)} must be a power of two from 1 to ${MAX_QUEUE_SIZE} (virtio 1.2 §2.7)`,
      { size },
    );
  }
}

/** Bytes needed for a contiguous split queue of `size` entries laid out by `splitQueueLayout`. */
export function splitQueueBytes(size: number): number {
  checkSize(size);
  const usedAt = alignUp(descTableBytes(size) + availRingBytes(size), USED_ALIGN);
  return usedAt + usedRingBytes(size);
}

/**
 * Places the three parts of a split queue one after the other from `base`: the descriptor
 * table, the available ring right behind it, and the used ring at the next 4-byte boundary.
 */
export function splitQueueLayout(base: number, size: number): QueueLayout {
  checkSize(size);
  if (!Number.isSafeInteger(base) || base < 0 || base % DESC_ALIGN !== 0) {
    throw new VmmError(
      'EINVAL',
      `queue base ${String(base)} must be a non-negative safe integer aligned to ${DESC_ALIGN} bytes`,
      { base },
    );
  }
  const availRing = base + descTableBytes(size);
  const usedRing = alignUp(availRing + availRingBytes(size), USED_ALIGN);
  if (!Number.isSafeInteger(usedRing + usedRingBytes(size))) {
    throw new VmmError('ERANGE', `queue at ${hex(base)} ends beyond the safe-integer range`, { base });
  }
  return { size, descTable: base, availRing, usedRing };
}

/**
 * Why a layout cannot be used, or `null`: a valid size and each part aligned as the spec
 * requires (virtio 1.2 §2.7 "Virtqueue Part Alignment").
 */
export function layoutProblem(layout: QueueLayout): string | null {
  const { size, descTable, availRing, usedRing } = layout;
  if (!isValidQueueSize(size)) return `queue size ${String(size)} is not a power of two from 1 to 32768`;
  for (const [name, addr, align] of [
    ['descriptor table', descTable, DESC_ALIGN],
    ['available ring', availRing, AVAIL_ALIGN],
    ['used ring', usedRing, USED_ALIGN],
  ] as const) {
    if (!Number.isSafeInteger(addr) || addr < 0)
      return `${name} address ${String(addr)} is not a safe integer`;
    if (addr % align !== 0) return `${name} at ${hex(addr)} is not aligned to ${align} bytes`;
  }
  return null;
}

/**
 * virtio 1.2 §2.7.10: with EVENT_IDX, notify when the index moved from `old` to `next` past
 * `event` (all arithmetic modulo 2^16).
 */
export function needEvent(event: number, next: number, old: number): boolean {
  return ((next - event - 1) & 0xffff) < ((next - old) & 0xffff);
}
