import { DeviceQueue } from '../virtio/device-queue.js';
import { DriverQueue } from '../virtio/driver-queue.js';
import { splitQueueBytes, splitQueueLayout } from '../virtio/layout.js';
import type { Segment } from '../virtio/types.js';
import { createTestMemory } from './memory.js';

/**
 * The bare virtqueue baseline of the device benchmarks: one driver queue and one device queue
 * over the same split ring in guest memory, with nothing behind them. `round(n)` adds `n`
 * chains of the given shape, checks for a kick, pops each, pushes it used, checks for an
 * interrupt and collects: what any virtio device's requests cost before the device does anything.
 */
export interface BareQueuePair {
  /** Runs one round of `count` chains (at most half the queue size); returns `count`. */
  round(count: number): number;
}

export function createBareQueuePair(
  options: { size?: number; readableBytes?: number; writableBytes?: number } = {},
): BareQueuePair {
  const size = options.size ?? 256;
  const t = createTestMemory({ size: 0x40_0000 });
  const layout = splitQueueLayout(t.allocator.alloc(splitQueueBytes(size)), size);
  const features = { eventIdx: true, indirect: true };
  const driver = new DriverQueue(t.memory, layout, features);
  const device = new DeviceQueue(t.memory, layout, features);
  const readable: Segment[] = [{ addr: t.scratch.base, len: options.readableBytes ?? 36 }];
  const writable: Segment[] = [{ addr: t.scratch.base + 0x100, len: options.writableBytes ?? 4 }];
  const usedLength = options.writableBytes ?? 4;
  let collected = 0;
  const onUsed = () => {
    collected++;
  };
  return {
    round(count) {
      for (let i = 0; i < count; i++) driver.add(readable, writable, i);
      driver.kickNeeded();
      for (let r = device.pop(); r !== null; r = device.pop())
        device.pushUsed(r.ok ? r.chain.head : r.head, usedLength);
      device.needsInterrupt();
      collected = 0;
      driver.collect(onUsed);
      if (collected !== count) throw new Error(`bare queue: ${collected} of ${count} chains came back`);
      return count;
    },
  };
}
