import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isVmmError } from '../errors.js';
import { createTestMemory } from '../testing/index.js';
import { DeviceQueue } from './device-queue.js';
import { DriverQueue } from './driver-queue.js';
import { splitQueueBytes, splitQueueLayout, VIRTQ_DESC_F_INDIRECT } from './layout.js';
import type { QueueFeatures, Segment } from './types.js';

const RAM = 0x4000_0000;
const BUF = RAM + 0x1_0000;

function pair(size: number, features: QueueFeatures, withAllocator = true) {
  const t = createTestMemory({ base: RAM, size: 0x20_0000 });
  const layout = splitQueueLayout(t.allocator.alloc(splitQueueBytes(size)), size);
  const driver = new DriverQueue(t.memory, layout, features, withAllocator ? { allocator: t.allocator } : {});
  const device = new DeviceQueue(t.memory, layout, features);
  return { ...t, layout, driver, device };
}

const plain = { eventIdx: false, indirect: false };

describe('DriverQueue', () => {
  it('writes a chain the device pops identically and collects the used length with its token', () => {
    const { driver, device } = pair(8, plain);
    const head = driver.add([{ addr: BUF, len: 10 }], [{ addr: BUF + 0x100, len: 20 }], 'req-1');
    expect(driver.freeCount).toBe(6);
    const r = device.pop();
    if (r === null || !r.ok) throw new Error('no chain');
    expect(r.chain.head).toBe(head);
    expect(r.chain.readable.slice(0, r.chain.readableCount)).toEqual([{ addr: BUF, len: 10 }]);
    expect(r.chain.writable.slice(0, r.chain.writableCount)).toEqual([{ addr: BUF + 0x100, len: 20 }]);
    expect(driver.pendingUsed).toBe(0);
    device.pushUsed(head, 4);
    expect(driver.pendingUsed).toBe(1);
    const seen: [unknown, number][] = [];
    expect(driver.collect((token, len) => seen.push([token, len]))).toBe(1);
    expect(seen).toEqual([['req-1', 4]]);
    expect(driver.freeCount).toBe(8);
    expect(driver.pendingUsed).toBe(0);
  });

  it('reports ENOMEM when the descriptors do not fit and EINVAL for bad buffers', () => {
    const { driver } = pair(2, plain);
    const three = [
      { addr: BUF, len: 1 },
      { addr: BUF, len: 1 },
      { addr: BUF, len: 1 },
    ];
    expect(() => driver.add(three, [], 0)).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
    expect(() => driver.add([], [], 0)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => driver.add([{ addr: -1, len: 1 }], [], 0)).toThrow(
      expect.objectContaining({ code: 'EINVAL' }),
    );
    expect(() => driver.add([{ addr: BUF, len: 2 ** 32 }], [], 0)).toThrow(
      expect.objectContaining({ code: 'EINVAL' }),
    );
    expect(() =>
      driver.add(
        [
          { addr: BUF, len: 2 ** 32 - 1 },
          { addr: BUF, len: 2 },
        ],
        [],
        0,
      ),
    ).toThrow(/4 GiB/);
    expect(driver.freeCount).toBe(2);
  });

  it('puts a long chain into an indirect table when negotiated and frees it on collect', () => {
    const { driver, device, allocator, layout, memory } = pair(2, { eventIdx: false, indirect: true });
    const freeBefore = allocator.freeBytes;
    const readable: Segment[] = Array.from({ length: 5 }, (_, i) => ({ addr: BUF + 16 * i, len: 16 }));
    const head = driver.add(readable, [{ addr: BUF + 0x1000, len: 8 }], 'long');
    expect(driver.freeCount).toBe(1);
    expect(memory.readU16(layout.descTable + 16 * head + 12)).toBe(VIRTQ_DESC_F_INDIRECT);
    expect(allocator.freeBytes).toBe(freeBefore - 0x1000);
    const r = device.pop();
    if (r === null || !r.ok) throw new Error('no chain');
    expect(r.chain.readable.slice(0, r.chain.readableCount)).toEqual(readable);
    expect(r.chain.writableLength).toBe(8);
    device.pushUsed(r.chain.head, 8);
    expect(driver.collect(() => {})).toBe(1);
    expect(driver.freeCount).toBe(2);
    expect(allocator.freeBytes).toBe(freeBefore);
  });

  it('kicks unless the device set VIRTQ_USED_F_NO_NOTIFY (no EVENT_IDX)', () => {
    const { driver, device } = pair(4, plain);
    expect(driver.kickNeeded()).toBe(false);
    driver.add([{ addr: BUF, len: 1 }], [], 0);
    expect(driver.kickNeeded()).toBe(true);
    expect(driver.kickNeeded()).toBe(false);
    device.enableNotifications(false);
    driver.add([{ addr: BUF, len: 1 }], [], 0);
    expect(driver.kickNeeded()).toBe(false);
    device.enableNotifications(true);
    driver.add([{ addr: BUF, len: 1 }], [], 0);
    expect(driver.kickNeeded()).toBe(true);
  });

  it('kicks only when avail.idx passes avail_event (EVENT_IDX)', () => {
    const { driver, device } = pair(8, { eventIdx: true, indirect: false });
    driver.add([{ addr: BUF, len: 1 }], [], 0);
    expect(driver.kickNeeded()).toBe(true); // avail_event 0, 0 → 1
    driver.add([{ addr: BUF, len: 1 }], [], 0);
    expect(driver.kickNeeded()).toBe(false); // 1 → 2 does not pass 0
    device.pop();
    device.pop();
    expect(device.pop()).toBeNull(); // drained: the device moves avail_event to 2
    driver.add([{ addr: BUF, len: 1 }], [], 0);
    expect(driver.kickNeeded()).toBe(true);
  });

  it('asks for interrupts through used_event and can suppress them', () => {
    const { driver, device } = pair(8, { eventIdx: true, indirect: false });
    const roundTrip = () => {
      driver.add([{ addr: BUF, len: 1 }], [], 0);
      const r = device.pop()!;
      device.pushUsed(r.ok ? r.chain.head : r.head, 0);
      return device.needsInterrupt();
    };
    expect(roundTrip()).toBe(true);
    expect(roundTrip()).toBe(false); // used_event still 0 until the driver collects
    driver.collect(() => {});
    expect(roundTrip()).toBe(true);
    driver.suppressInterrupts(true);
    driver.collect(() => {});
    expect(roundTrip()).toBe(false);
    // Re-enabling asks for the buffer after the last collected one; one used meanwhile is
    // found by polling, as with Linux's virtqueue_enable_cb + virtqueue_poll.
    driver.suppressInterrupts(false);
    expect(driver.pendingUsed).toBe(1);
    driver.collect(() => {});
    expect(roundTrip()).toBe(true);
  });

  it('collects an element the device published while used_event was being re-armed (EVENT_IDX)', () => {
    const { driver, device } = pair(8, { eventIdx: true, indirect: false });
    driver.add([{ addr: BUF, len: 1 }], [], 'a');
    driver.add([{ addr: BUF, len: 1 }], [], 'b');
    // The popped chain object is reused: read the heads before the next pop.
    const headOf = () => {
      const r = device.pop()!;
      return r.ok ? r.chain.head : r.head;
    };
    const first = headOf();
    const second = headOf();
    device.pushUsed(first, 1);
    const store = Atomics.store;
    let injected = false;
    Atomics.store = ((array: Uint16Array, index: number, value: number) => {
      const result = store(array as never, index, value);
      if (!injected) {
        injected = true;
        // The device, on another thread, completes the second request right now.
        device.pushUsed(second, 2);
      }
      return result;
    }) as typeof Atomics.store;
    const got: unknown[] = [];
    try {
      driver.collect((token) => got.push(token));
    } finally {
      Atomics.store = store;
    }
    expect(got).toEqual(['a', 'b']);
  });

  it('refuses a used id that is not in flight (a broken device)', () => {
    const { driver, memory, layout } = pair(4, plain);
    driver.add([{ addr: BUF, len: 1 }], [], 0);
    memory.writeU32(layout.usedRing + 4, 3);
    memory.writeU16(layout.usedRing + 2, 1);
    try {
      driver.collect(() => {});
      expect.unreachable();
    } catch (error) {
      expect(isVmmError(error, 'EFAULT')).toBe(true);
    }
    expect(driver.broken).toBe(true);
  });
});

describe('DriverQueue ↔ DeviceQueue round trip (property)', () => {
  const segment = fc.record({
    addr: fc.integer({ min: BUF, max: BUF + 0x8000 }),
    len: fc.integer({ min: 0, max: 512 }),
  });
  const request = fc
    .record({
      readable: fc.array(segment, { maxLength: 5 }),
      writable: fc.array(segment, { maxLength: 5 }),
      used: fc.integer({ min: 0, max: 0xffff_ffff }),
    })
    .filter((r) => r.readable.length + r.writable.length > 0);

  it('delivers every chain unchanged and returns every used length with its token', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(4, 8, 16),
        fc.boolean(),
        fc.boolean(),
        fc.array(request, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 6 }),
        (size, eventIdx, indirect, requests, batch) => {
          const { driver, device } = pair(size, { eventIdx, indirect });
          const collected: [unknown, number][] = [];
          const expected: [unknown, number][] = [];
          let next = 0;
          while (next < requests.length) {
            // Add a batch (as far as descriptors allow), let the device serve it, collect.
            const added: number[] = [];
            for (let k = 0; k < batch && next < requests.length; k++) {
              const req = requests[next]!;
              const need = req.readable.length + req.writable.length;
              const fits = need <= driver.freeCount || (indirect && driver.freeCount > 0 && need > 1);
              if (!fits) {
                if (added.length === 0 && driver.freeCount === size) {
                  // Cannot ever fit: the driver must say so and change nothing.
                  expect(() => driver.add(req.readable, req.writable, next)).toThrow(/does not fit/);
                  next++;
                }
                break;
              }
              driver.add(req.readable, req.writable, next);
              added.push(next++);
            }
            for (const index of added) {
              const r = device.pop();
              if (r === null || !r.ok) throw new Error(`chain ${index} not delivered`);
              const req = requests[index]!;
              const nonEmpty = (s: Segment[]) => s.filter((x) => x.len > 0);
              expect(r.chain.readable.slice(0, r.chain.readableCount)).toEqual(nonEmpty(req.readable));
              expect(r.chain.writable.slice(0, r.chain.writableCount)).toEqual(nonEmpty(req.writable));
              device.pushUsed(r.chain.head, req.used);
              expected.push([index, req.used]);
            }
            expect(device.pop()).toBeNull();
            driver.collect((token, len) => collected.push([token, len]));
            expect(driver.freeCount).toBe(size);
          }
          expect(collected).toEqual(expected);
        },
      ),
      { numRuns: 150 },
    );
  });
});
