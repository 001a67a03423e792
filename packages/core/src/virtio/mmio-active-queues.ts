import type { DeviceQueue } from './device-queue.js';
import type { VirtioDevice } from './types.js';

/**
 * The queues a `VirtioMmioTransport` handed to its device at DRIVER_OK, and how the device
 * hears of buffers on them: a notification from the driver (QueueNotify), or a host thread that
 * busy-polls the queues the device names in `busyPollQueues`. The transport decides whether the
 * device is live; this only runs it, and reports a device callback that throws to `failed`.
 */
export class ActiveQueues {
  /** The queues handed to the device at DRIVER_OK (empty before and after a reset). */
  list: (DeviceQueue | undefined)[] = [];
  /** Whether a host thread is polling (`startPolling` … `stopPolling`). */
  private polling = false;
  /** Queues notified while the host polls: their notifications are held off, the host watches them. */
  private polled: number[] = [];

  constructor(
    private readonly device: VirtioDevice<DeviceQueue>,
    private readonly failed: (error: unknown) => void,
  ) {}

  /** The driver notified queue `index` of a live device. */
  notify(index: number): void {
    const queue = this.list[index];
    if (queue === undefined) return;
    if (this.polling && !this.polled.includes(index) && this.device.busyPollQueues?.includes(index)) {
      // The host polls from now on: the driver need not notify this queue until it stops.
      queue.holdNotifications(true);
      this.polled.push(index);
    }
    this.notifyDevice(index);
  }

  startPolling(): void {
    this.polling = true;
  }

  /** One turn of a polling host over a live device; returns the chains the device took. */
  poll(): number {
    const polled = this.polled;
    if (polled.length === 0) return 0;
    return this.runAvailable(polled);
  }

  /**
   * The host stops polling: notifications go back to what the device asks, then, if `live`, each
   * watched queue is looked at once more, since a buffer made available before that raised no
   * notification (virtio 1.2 §2.7.10). Returns the chains the device took.
   */
  stopPolling(live: boolean): number {
    this.polling = false;
    if (this.polled.length === 0) return 0;
    const polled = this.polled;
    this.polled = [];
    for (const index of polled) this.list[index]?.holdNotifications(false);
    if (!live) return 0;
    return this.runAvailable(polled);
  }

  /** Transport reset: the queues are disposed and nothing is watched any more. */
  dispose(): void {
    for (const queue of this.list) queue?.dispose();
    this.list = [];
    this.polled = [];
  }

  /** Runs the device for each of `indexes` whose queue has buffers available; returns the chains it took. */
  private runAvailable(indexes: readonly number[]): number {
    let done = 0;
    for (let i = 0; i < indexes.length; i++) {
      const index = indexes[i]!;
      const queue = this.list[index];
      if (queue === undefined || !queue.hasAvailable()) continue;
      const before = queue.nextAvailIndex;
      this.notifyDevice(index);
      done += (queue.nextAvailIndex - before) & 0xffff;
    }
    return done;
  }

  private notifyDevice(index: number): void {
    try {
      this.device.notify(index);
    } catch (error) {
      this.failed(error);
    }
  }
}
