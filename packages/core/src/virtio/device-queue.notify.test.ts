import { describe, expect, it, vi } from 'vitest';
import { createTestMemory, MockSplitQueue } from '../testing/index.js';
import type { DeviceQueue } from './device-queue.js';

const RAM = 0x4000_0000;
const QUEUE = RAM;
const BUF = RAM + 0x1_0000;

function setup(size = 8, features: { eventIdx?: boolean; indirect?: boolean } = {}) {
  const { memory } = createTestMemory({ banks: [{ gpa: RAM, size: 0x10_0000 }] });
  const mock = new MockSplitQueue(memory, QUEUE, size);
  const onBroken = vi.fn();
  const queue = mock.deviceQueue(features, onBroken);
  return { memory, mock, queue, onBroken };
}

describe('DeviceQueue notifications (virtio 1.2 §2.7.7, §2.7.10)', () => {
  function pushOne(mock: MockSplitQueue, queue: DeviceQueue): void {
    mock.addChain([{ addr: BUF, len: 4 }]);
    const r = queue.pop();
    if (r === null) throw new Error('nothing popped');
    queue.pushUsed(r.ok ? r.chain.head : r.head, 0);
  }

  it('without EVENT_IDX: interrupts unless VIRTQ_AVAIL_F_NO_INTERRUPT, and only for new used buffers', () => {
    const { mock, queue } = setup();
    expect(queue.needsInterrupt()).toBe(false);
    pushOne(mock, queue);
    expect(queue.needsInterrupt()).toBe(true);
    expect(queue.needsInterrupt()).toBe(false);
    mock.setAvailFlags(1);
    pushOne(mock, queue);
    expect(queue.needsInterrupt()).toBe(false);
    mock.setAvailFlags(0);
    pushOne(mock, queue);
    expect(queue.needsInterrupt()).toBe(true);
  });

  it('with EVENT_IDX: interrupts when used.idx passes used_event and ignores the flags', () => {
    const { mock, queue } = setup(8, { eventIdx: true });
    mock.setAvailFlags(1);
    pushOne(mock, queue); // used 0 → 1 passes used_event 0
    expect(queue.needsInterrupt()).toBe(true);
    pushOne(mock, queue); // 1 → 2 does not pass 0
    expect(queue.needsInterrupt()).toBe(false);
    mock.setUsedEvent(3);
    pushOne(mock, queue); // 2 → 3
    expect(queue.needsInterrupt()).toBe(false);
    pushOne(mock, queue);
    pushOne(mock, queue); // 3 → 5 passes 3
    expect(queue.needsInterrupt()).toBe(true);
  });

  it('without EVENT_IDX: suppresses kicks with VIRTQ_USED_F_NO_NOTIFY', () => {
    const { mock, queue } = setup();
    queue.enableNotifications(false);
    expect(mock.usedFlags).toBe(1);
    queue.enableNotifications(true);
    expect(mock.usedFlags).toBe(0);
  });

  it('with EVENT_IDX: keeps used flags 0 and moves avail_event to the next index once drained', () => {
    const { mock, queue } = setup(8, { eventIdx: true });
    pushOne(mock, queue);
    mock.addChain([{ addr: BUF, len: 4 }]);
    // While entries remain the device does not ask for notifications.
    expect(mock.availEvent).toBe(0);
    expect(queue.pop()).not.toBeNull();
    expect(queue.pop()).toBeNull();
    expect(mock.availEvent).toBe(2);
    queue.enableNotifications(false);
    mock.addChain([{ addr: BUF, len: 4 }]);
    expect(queue.pop()).not.toBeNull();
    expect(queue.pop()).toBeNull();
    expect(mock.availEvent).toBe(2);
    expect(mock.usedFlags).toBe(0);
    queue.enableNotifications(true);
    expect(mock.availEvent).toBe(3);
    expect(mock.usedFlags).toBe(0);
  });

  it('holdNotifications keeps kicks suppressed whatever the device asks, and the release applies its choice', () => {
    const plain = setup();
    plain.queue.holdNotifications(true);
    expect(plain.mock.usedFlags).toBe(1);
    plain.queue.enableNotifications(true);
    expect(plain.mock.usedFlags).toBe(1);
    plain.queue.holdNotifications(false);
    expect(plain.mock.usedFlags).toBe(0);

    const { mock, queue } = setup(8, { eventIdx: true });
    queue.holdNotifications(true);
    pushOne(mock, queue);
    // Drained, but avail_event stays where it was: the driver is not asked to notify.
    expect(queue.pop()).toBeNull();
    queue.enableNotifications(true);
    expect(mock.availEvent).toBe(0);
    mock.addChain([{ addr: BUF, len: 4 }]);
    queue.holdNotifications(false);
    expect(mock.availEvent).toBe(1);
    // The buffer added under the hold raised no notification: the caller looks again.
    expect(queue.hasAvailable()).toBe(true);
  });

  it('with EVENT_IDX: finds an entry added while it re-armed the notification', () => {
    const { mock, queue } = setup(8, { eventIdx: true });
    mock.addChain([{ addr: BUF, len: 4 }]);
    expect(queue.pop()).not.toBeNull();
    // A driver on another thread adds an entry right as the device drains: the pop that
    // publishes avail_event looks again and returns it.
    let injected = false;
    const store = Atomics.store;
    Atomics.store = ((array: Uint16Array, index: number, value: number) => {
      const result = store(array as never, index, value);
      if (!injected) {
        injected = true;
        mock.addChain([{ addr: BUF, len: 4 }], 1);
      }
      return result;
    }) as typeof Atomics.store;
    try {
      expect(queue.pop()).not.toBeNull();
    } finally {
      Atomics.store = store;
    }
    expect(injected).toBe(true);
    expect(queue.pop()).toBeNull();
  });
});
