import type { DeviceQueueApi } from '@vmmkit/core';
import { FAULT_REPORT_SIZE } from '../protocol/constants.js';
import { writeFaultReport } from '../protocol/fault.js';

/** Counters of the event queue. */
export interface FaultStats {
  /** Faults raised by translations. */
  raised: number;
  /** Reports written into an event buffer. */
  delivered: number;
  /** Reports dropped: no buffer posted, or the queue is not live. */
  dropped: number;
  /** Buffers shorter than 24 bytes, returned unwritten (their report is dropped too). */
  shortBuffers: number;
}

/**
 * Writes 24-byte fault reports into buffers the driver posted on the event queue (virtio 1.2
 * §5.13.7). Nothing is queued on the host: with no buffer the report is dropped and counted, so
 * a fault storm cannot grow host memory (the spec allows the device to drop).
 */
export class FaultReporter {
  private queue: DeviceQueueApi | null = null;
  private notify: (() => void) | null = null;
  private readonly bytes = new Uint8Array(FAULT_REPORT_SIZE);
  private readonly view = new DataView(this.bytes.buffer);
  readonly stats: FaultStats = { raised: 0, delivered: 0, dropped: 0, shortBuffers: 0 };

  attach(queue: DeviceQueueApi | null, notify: (() => void) | null): void {
    this.queue = queue;
    this.notify = notify;
  }

  /** Posts one report; returns whether it reached a buffer. */
  report(
    reason: number,
    flags: number,
    endpoint: number,
    pasid: number,
    addressLo: number,
    addressHi: number,
  ): boolean {
    this.stats.raised++;
    const queue = this.queue;
    if (queue === null) {
      this.stats.dropped++;
      return false;
    }
    const popped = queue.pop();
    if (popped === null) {
      this.stats.dropped++;
      return false;
    }
    if (!popped.ok) {
      queue.pushUsed(popped.head, 0);
      this.stats.dropped++;
      this.signal(queue);
      return false;
    }
    const chain = popped.chain;
    // virtio 1.2 §5.13.7.2: the device SHOULD NOT split a report over several buffers; a buffer
    // too small for it goes back unwritten.
    if (chain.writableLength < FAULT_REPORT_SIZE) {
      queue.pushUsed(chain.head, 0);
      this.stats.shortBuffers++;
      this.stats.dropped++;
      this.signal(queue);
      return false;
    }
    writeFaultReport(this.view, 0, reason, flags, endpoint, pasid, addressLo, addressHi);
    let written = 0;
    try {
      written = chain.writeFrom(this.bytes, 0);
    } catch {
      // The buffer's bank vanished after the pop: return it unwritten.
      written = 0;
    }
    const delivered = written === FAULT_REPORT_SIZE;
    queue.pushUsed(chain.head, delivered ? FAULT_REPORT_SIZE : 0);
    if (delivered) this.stats.delivered++;
    else this.stats.dropped++;
    this.signal(queue);
    return delivered;
  }

  private signal(queue: DeviceQueueApi): void {
    if (queue.needsInterrupt()) this.notify?.();
  }

  resetStats(): void {
    this.stats.raised = 0;
    this.stats.delivered = 0;
    this.stats.dropped = 0;
    this.stats.shortBuffers = 0;
  }
}
