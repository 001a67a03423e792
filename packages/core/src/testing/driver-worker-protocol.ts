import type { BankDescriptor } from '../memory/bank.js';
import type { QueueFeatures, QueueLayout } from '../virtio/types.js';

/** What the host thread hands the driver worker (`driver-worker.ts`). */
export interface DriverWorkerData {
  banks: BankDescriptor[];
  layout: QueueLayout;
  features: QueueFeatures;
  /** Where request i's 8-byte buffers live: readable at `buffers + 16·slot`, writable 8 bytes after. */
  buffers: number;
  requests: number;
  /** 20 bytes: Int32 words indexed by the CONTROL_* constants. */
  control: SharedArrayBuffer;
}

/** Set by the worker once the ring is initialised. */
export const CONTROL_READY = 0;
/** Set by the worker when it finished. */
export const CONTROL_DONE = 1;
/** Doorbell: bumped (and notified) by the worker for each kick. */
export const CONTROL_KICKS = 3;
/** Interrupt line: bumped (and notified) by the device thread for each used-buffer interrupt. */
export const CONTROL_IRQS = 4;

export interface DriverWorkerResult {
  completed: number;
  errors: string[];
  kicks: number;
  /** Waits for an interrupt that timed out (a lost notification or a descheduled thread). */
  stalls: number;
}
