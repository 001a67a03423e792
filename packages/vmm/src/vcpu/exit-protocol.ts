/**
 * The shared-memory protocol between a vCPU thread and the host: KVM_RUN's exit, ioeventfd and
 * the kick, over SharedArrayBuffers.
 *
 * Control block (one per VM, Int32 words):
 *   [WAKE]    incremented by any vCPU that posted work for the host; the host waits on it.
 *   [MEMGEN]  memory-map generation; bumped after the host posted a bank change to the vCPUs.
 *
 * Exit slot (one per vCPU, Int32 words, fields on their own 64-byte lines where it matters):
 *   [STATE]   IDLE → REQUEST (vCPU) → RESPONSE (host) → IDLE (vCPU)
 *   [OP] [SIZE] [ADDR_LO] [ADDR_HI] [VALUE_LO] [VALUE_HI]   the access, and the read result
 *   [MEMGEN_SEEN]   last memory generation the vCPU applied
 *   [DB_HEAD] (host) / [DB_TAIL] (vCPU)   a single-producer ring of posted doorbell writes
 *
 * A doorbell (QueueNotify, a DMA engine's start register) is a write the vCPU does not wait
 * for, like an ioeventfd: it goes into the ring and the host drains the ring *before* serving
 * the same vCPU's next exit, so a later status read still observes its effect.
 */
export const CTRL_WAKE = 0;
export const CTRL_MEMGEN = 16;
export const CTRL_WORDS = 32;

export const SLOT_STATE = 0;
export const SLOT_OP = 1;
export const SLOT_SIZE = 2;
export const SLOT_ADDR_LO = 3;
export const SLOT_ADDR_HI = 4;
export const SLOT_VALUE_LO = 5;
export const SLOT_VALUE_HI = 6;
export const SLOT_MEMGEN_SEEN = 7;
export const SLOT_DB_HEAD = 16;
export const SLOT_DB_TAIL = 32;
export const SLOT_DB_RING = 48;
/** Words per doorbell entry: address low, address high, size, value. */
export const DB_ENTRY_WORDS = 4;
export const DB_CAPACITY = 64;
export const SLOT_WORDS = SLOT_DB_RING + DB_CAPACITY * DB_ENTRY_WORDS;

export const STATE_IDLE = 0;
export const STATE_REQUEST = 1;
export const STATE_RESPONSE = 2;

export const OP_READ = 1;
export const OP_WRITE = 2;

/** Polls before blocking, on both sides (perf-limits §5: the hybrid doorbell polls ~20 000 times). */
export const DEFAULT_SPIN = 20_000;

const TWO_32 = 2 ** 32;

export function splitLo(value: number): number {
  return value >>> 0;
}

export function splitHi(value: number): number {
  return Math.floor(value / TWO_32) >>> 0;
}

export function joinHalves(lo: number, hi: number): number {
  return (hi >>> 0) * TWO_32 + (lo >>> 0);
}

export function createControlBlock(): SharedArrayBuffer {
  return new SharedArrayBuffer(CTRL_WORDS * 4);
}

export function createExitSlot(): SharedArrayBuffer {
  return new SharedArrayBuffer(SLOT_WORDS * 4);
}
