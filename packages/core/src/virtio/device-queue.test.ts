import { describe, expect, it, vi } from 'vitest';
import { isVmmError } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { createTestMemory, MockSplitQueue } from '../testing/index.js';
import { DeviceQueue } from './device-queue.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from './layout.js';
import type { DescriptorChain, PopResult } from './queue-api.js';

const RAM = 0x4000_0000;
const QUEUE = RAM;
const BUF = RAM + 0x1_0000;
const TABLE = RAM + 0x8_0000;
const { NEXT, WRITE, INDIRECT } = {
  NEXT: VIRTQ_DESC_F_NEXT,
  WRITE: VIRTQ_DESC_F_WRITE,
  INDIRECT: VIRTQ_DESC_F_INDIRECT,
};

function setup(size = 8, features: { eventIdx?: boolean; indirect?: boolean } = {}) {
  const { memory } = createTestMemory({
    banks: [
      { gpa: RAM, size: 0x10_0000 },
      { gpa: RAM + 0x10_0000, size: 0x1000, readOnly: true },
      { gpa: RAM + 0x20_0000, size: 0x1000, kind: 'device' },
    ],
  });
  const mock = new MockSplitQueue(memory, QUEUE, size);
  const onBroken = vi.fn();
  const queue = mock.deviceQueue(features, onBroken);
  return { memory, mock, queue, onBroken };
}

function expectOk(result: PopResult | null): DescriptorChain {
  expect(result).not.toBeNull();
  if (result === null || !result.ok) throw new Error(`expected a chain, got ${JSON.stringify(result)}`);
  return result.chain;
}

function expectError(result: PopResult | null, error: string): number {
  expect(result).not.toBeNull();
  if (result === null || result.ok) throw new Error('expected a refused chain');
  expect(result.error).toBe(error);
  expect(result.detail.length).toBeGreaterThan(0);
  return result.head;
}

describe('DeviceQueue.pop', () => {
  it('returns null while the available ring is empty', () => {
    const { queue } = setup();
    expect(queue.pop()).toBeNull();
    expect(queue.hasAvailable()).toBe(false);
  });

  it('walks a readable + writable chain and copies through it', () => {
    const { memory, mock, queue } = setup();
    memory.write(BUF, new Uint8Array([1, 2, 3, 4, 5]));
    mock.writeDescriptor(3, { addr: BUF, len: 5, flags: NEXT, next: 6 });
    mock.writeDescriptor(6, { addr: BUF + 0x100, len: 8, flags: WRITE });
    mock.pushAvail(3);
    expect(queue.hasAvailable()).toBe(true);
    const chain = expectOk(queue.pop());
    expect(chain.head).toBe(3);
    expect(chain.readableCount).toBe(1);
    expect(chain.readable[0]).toEqual({ addr: BUF, len: 5 });
    expect(chain.readableLength).toBe(5);
    expect(chain.writableCount).toBe(1);
    expect(chain.writable[0]).toEqual({ addr: BUF + 0x100, len: 8 });
    expect(chain.writableLength).toBe(8);
    const got = new Uint8Array(4);
    expect(chain.readInto(got, 1)).toBe(4);
    expect([...got]).toEqual([2, 3, 4, 5]);
    expect(chain.writeFrom(new Uint8Array([9, 9, 9]), 6)).toBe(2);
    expect([...memory.read(BUF + 0x106, 2)]).toEqual([9, 9]);
    expect(queue.pop()).toBeNull();
  });

  it('concatenates buffers split anywhere (virtio 1.2 §2.7.4: no particular split may be assumed)', () => {
    const { memory, mock, queue } = setup();
    memory.write(
      BUF,
      new Uint8Array(100).map((_, i) => i),
    );
    mock.addChain([
      { addr: BUF, len: 3 },
      { addr: BUF + 3, len: 60 },
      { addr: BUF + 63, len: 37 },
      { addr: BUF + 0x200, len: 40, write: true },
      { addr: BUF + 0x300, len: 60, write: true },
    ]);
    const chain = expectOk(queue.pop());
    const all = new Uint8Array(100);
    expect(chain.readInto(all)).toBe(100);
    expect([...all]).toEqual([...new Uint8Array(100).map((_, i) => i)]);
    expect(chain.writeFrom(all)).toBe(100);
    expect([...memory.read(BUF + 0x200, 40)]).toEqual([...all.subarray(0, 40)]);
    expect([...memory.read(BUF + 0x300, 60)]).toEqual([...all.subarray(40)]);
  });

  it('accepts a chain of exactly the queue size and skips zero-length buffers', () => {
    const { mock, queue } = setup(4);
    mock.addChain([
      { addr: BUF, len: 1 },
      { addr: 0xdead_beef_0000, len: 0 },
      { addr: BUF, len: 2, write: true },
      { addr: BUF + 8, len: 3, write: true },
    ]);
    const chain = expectOk(queue.pop());
    expect(chain.readableCount).toBe(1);
    expect(chain.writableCount).toBe(2);
    expect(chain.writableLength).toBe(5);
  });

  it('refuses a head beyond the queue and still consumes the entry (virtio 1.2 §2.7.6)', () => {
    const { mock, queue } = setup(4);
    mock.pushAvail(4);
    mock.addChain([{ addr: BUF, len: 4 }], 1);
    expect(expectError(queue.pop(), 'head-out-of-range')).toBe(4);
    expect(expectOk(queue.pop()).head).toBe(1);
  });

  it('refuses a next index beyond the table', () => {
    const { mock, queue } = setup(4);
    mock.writeDescriptor(0, { addr: BUF, len: 4, flags: NEXT, next: 4 });
    mock.pushAvail(0);
    expect(expectError(queue.pop(), 'next-out-of-range')).toBe(0);
  });

  it('stops loops after the queue size (virtio 1.2 §2.7.5.2: loops are forbidden)', () => {
    const { mock, queue } = setup(8);
    mock.writeDescriptor(0, { addr: BUF, len: 4, flags: NEXT, next: 1 });
    mock.writeDescriptor(1, { addr: BUF, len: 4, flags: NEXT, next: 0 });
    mock.writeDescriptor(5, { addr: BUF, len: 4, flags: NEXT, next: 5 });
    mock.pushAvail(0);
    mock.pushAvail(5);
    expectError(queue.pop(), 'loop');
    expectError(queue.pop(), 'loop');
  });

  it('refuses a readable buffer after a writable one (virtio 1.2 §2.7.5.2)', () => {
    const { mock, queue } = setup();
    mock.addChain([
      { addr: BUF, len: 4, write: true },
      { addr: BUF, len: 4 },
    ]);
    expectError(queue.pop(), 'readable-after-writable');
  });

  it('refuses buffers outside RAM, in device banks, beyond 2^53 and writable read-only memory', () => {
    const { mock, queue } = setup();
    const cases: [number | bigint, number, boolean][] = [
      [RAM - 0x1000, 16, false], // gap below RAM
      [RAM + 0x20_0000, 4, false], // device bank
      [RAM + 0x0f_fff0, 32, false], // crosses into the adjacent read-only RAM bank: fine for reading
      [RAM + 0x10_0000, 4, true], // writable buffer in a read-only bank
      [2n ** 60n, 4, false], // far beyond guest memory
      [2 ** 53 - 2, 4, false], // wraps past the safe range
      [RAM + 0x10_1000, 4, false], // gap after the read-only bank
    ];
    const results: string[] = [];
    for (const [addr, len, write] of cases) {
      mock.writeDescriptor(0, { addr, len, flags: write ? WRITE : 0 });
      mock.pushAvail(0);
      const r = queue.pop();
      results.push(r === null ? 'null' : r.ok ? 'ok' : r.error);
      queue.pushUsed(r !== null && !r.ok ? r.head : 0, 0);
    }
    expect(results).toEqual([
      'buffer-not-in-ram',
      'buffer-not-in-ram',
      'ok', // RAM then the adjacent read-only RAM bank: readable is allowed
      'buffer-not-in-ram',
      'buffer-not-in-ram',
      'buffer-not-in-ram',
      'buffer-not-in-ram',
    ]);
  });

  it('caps the chain at 4 GiB even when buffers overlap the same RAM (virtio 1.2 §2.7.5.2)', () => {
    const fourMib = 0x40_0000;
    // 1024 buffers (the most a chain may hold) of 4 MiB, all over the same 4 MiB of RAM.
    const overlapping = (lastExtra: number) =>
      Array.from({ length: 1024 }, (_, i) => ({
        addr: RAM,
        len: i === 1023 ? fourMib + lastExtra : fourMib,
        flags: i < 1023 ? NEXT : 0,
        next: i + 1,
      }));
    const run = (lastExtra: number) => {
      const { memory } = createTestMemory({ banks: [{ gpa: RAM, size: 0x100_0000 }] });
      const mock = new MockSplitQueue(memory, QUEUE, 4);
      const table = RAM + 0x80_0000;
      mock.writeTable(table, overlapping(lastExtra));
      mock.writeDescriptor(0, { addr: table, len: 16 * 1024, flags: INDIRECT });
      mock.pushAvail(0);
      return mock.deviceQueue({ indirect: true }).pop();
    };
    // Exactly 2^32 bytes: allowed; one byte more is not.
    const chain = expectOk(run(0));
    expect(chain.readableCount).toBe(1024);
    expect(chain.readableLength).toBe(2 ** 32);
    expectError(run(1), 'chain-too-long');
  });
});

describe('DeviceQueue indirect descriptors (virtio 1.2 §2.7.5.3)', () => {
  it('follows an indirect table and ignores the WRITE flag of the pointing descriptor', () => {
    const { mock, queue } = setup(4, { indirect: true });
    mock.writeTable(TABLE, [
      { addr: BUF, len: 10, flags: NEXT, next: 2 },
      { addr: 0, len: 0 },
      { addr: BUF + 0x40, len: 20, flags: WRITE },
    ]);
    mock.writeDescriptor(1, { addr: BUF + 0x80, len: 6, flags: NEXT, next: 2 });
    mock.writeDescriptor(2, { addr: TABLE, len: 48, flags: INDIRECT | WRITE });
    mock.pushAvail(1);
    const chain = expectOk(queue.pop());
    expect(chain.head).toBe(1);
    expect(chain.readable.slice(0, chain.readableCount)).toEqual([
      { addr: BUF + 0x80, len: 6 },
      { addr: BUF, len: 10 },
    ]);
    expect(chain.writable.slice(0, chain.writableCount)).toEqual([{ addr: BUF + 0x40, len: 20 }]);
  });

  it('refuses indirect tables that are not negotiated, nested, chained, empty or not a multiple of 16', () => {
    const cases: [{ indirect: boolean }, number, number, number, string][] = [
      [{ indirect: false }, INDIRECT, 32, TABLE, 'indirect-not-negotiated'],
      [{ indirect: true }, INDIRECT | NEXT, 32, TABLE, 'indirect-with-next'],
      [{ indirect: true }, INDIRECT, 0, TABLE, 'indirect-bad-length'],
      [{ indirect: true }, INDIRECT, 24, TABLE, 'indirect-bad-length'],
      [{ indirect: true }, INDIRECT, 32, RAM + 0x20_0000, 'buffer-not-in-ram'],
      [{ indirect: true }, INDIRECT, 32, TABLE + 2 * 16, 'nested-indirect'],
    ];
    for (const [features, flags, len, addr, error] of cases) {
      const { mock, queue } = setup(4, features);
      mock.writeTable(TABLE, [
        { addr: BUF, len: 4 },
        { addr: BUF, len: 4 },
        { addr: TABLE, len: 32, flags: INDIRECT },
        { addr: BUF, len: 4 },
      ]);
      mock.writeDescriptor(0, { addr, len, flags, next: 1 });
      mock.pushAvail(0);
      expectError(queue.pop(), error);
    }
  });

  it('accepts at most 1024 buffers through an indirect table, whatever the table claims (as QEMU)', () => {
    const { mock, queue } = setup(2, { indirect: true });
    const chained = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ addr: BUF, len: 1, flags: i < n - 1 ? NEXT : 0, next: i + 1 }));
    mock.writeTable(TABLE, chained(1025));
    mock.writeDescriptor(0, { addr: TABLE, len: 16 * 1025, flags: INDIRECT });
    mock.pushAvail(0);
    expectError(queue.pop(), 'chain-too-long');
    queue.pushUsed(0, 0);
    mock.writeTable(TABLE, chained(1024));
    mock.writeDescriptor(1, { addr: TABLE, len: 16 * 1024, flags: INDIRECT });
    mock.pushAvail(1);
    expect(expectOk(queue.pop()).readableLength).toBe(1024);
  });

  it('bounds loops inside an indirect table by its size', () => {
    const { mock, queue } = setup(2, { indirect: true });
    mock.writeTable(TABLE, [
      { addr: BUF, len: 4, flags: NEXT, next: 1 },
      { addr: BUF, len: 4, flags: NEXT, next: 0 },
    ]);
    mock.writeDescriptor(0, { addr: TABLE, len: 32, flags: INDIRECT });
    mock.pushAvail(0);
    expectError(queue.pop(), 'loop');
  });
});

describe('DeviceQueue available index', () => {
  it('breaks the queue when avail.idx runs more than the size ahead (rust-vmm InvalidAvailRingIndex)', () => {
    const { mock, queue, onBroken } = setup(4);
    mock.setAvailIdx(4);
    for (let i = 0; i < 4; i++) expect(queue.pop()).not.toBeNull();
    mock.setAvailIdx(9);
    expect(queue.pop()).toBeNull();
    expect(queue.broken).toBe(true);
    expect(onBroken).toHaveBeenCalledTimes(1);
    expect(onBroken.mock.calls[0]![0]).toMatch(/ahead/);
    mock.setAvailIdx(5);
    expect(queue.pop()).toBeNull();
    expect(onBroken).toHaveBeenCalledTimes(1);
    // Pushing after the break does nothing.
    const usedBefore = mock.usedIdx;
    queue.pushUsed(0, 0);
    expect(mock.usedIdx).toBe(usedBefore);
  });

  it('keeps working across the 16-bit index wrap', () => {
    const { mock, queue } = setup(4);
    mock.writeDescriptor(0, { addr: BUF, len: 4 });
    for (let i = 0; i < 0x10005; i++) {
      mock.pushAvail(0);
      expectOk(queue.pop());
      queue.pushUsed(0, i & 0xff);
    }
    expect(mock.usedIdx).toBe(0x10005 & 0xffff);
    expect(mock.usedElement(0x10004)).toEqual({ id: 0, len: 0x10004 & 0xff });
    expect(queue.broken).toBe(false);
  });

  it('breaks the queue when the bank holding the ring is unplugged', () => {
    const memory = new GuestMemory();
    memory.addBank({ gpa: 0x1000, size: 0x1000 });
    memory.addBank({ gpa: 0x8000, size: 0x1000 });
    const mock = new MockSplitQueue(memory, 0x1000, 4);
    const onBroken = vi.fn();
    const queue = mock.deviceQueue({}, onBroken);
    memory.removeBank(0x8000);
    expect(onBroken).not.toHaveBeenCalled();
    memory.removeBank(0x1000);
    expect(onBroken).toHaveBeenCalledWith(expect.stringMatching(/removed/));
    expect(queue.pop()).toBeNull();
  });

  it('refuses a layout that is not in RAM at construction (API misuse → VmmError)', () => {
    const { memory } = setup();
    expect(
      () =>
        new DeviceQueue(
          memory,
          { size: 4, descTable: 0x1000, availRing: 0x2000, usedRing: 0x3000 },
          {
            eventIdx: false,
            indirect: false,
          },
        ),
    ).toThrow(/not inside one/);
  });
});

describe('DeviceQueue.pushUsed', () => {
  it('publishes {id, len} and then the index; refused chains go back with length 0', () => {
    const { mock, queue } = setup(4);
    mock.addChain([{ addr: BUF, len: 4, write: true }], 2);
    mock.pushAvail(7);
    const chain = expectOk(queue.pop());
    queue.pushUsed(chain.head, 3);
    const refused = queue.pop();
    if (refused === null || refused.ok) throw new Error('expected refusal');
    queue.pushUsed(refused.head, 0);
    expect(mock.usedIdx).toBe(2);
    expect(mock.usedSince(0)).toEqual([
      { id: 2, len: 3 },
      { id: 7, len: 0 },
    ]);
  });

  it('refuses API misuse: nothing in flight, bad head or length', () => {
    const { mock, queue } = setup(4);
    expect(() => queue.pushUsed(0, 0)).toThrow(/without a popped chain/);
    mock.addChain([{ addr: BUF, len: 4 }]);
    queue.pop();
    for (const [head, len] of [
      [-1, 0],
      [0x10000, 0],
      [0, -1],
      [0, 2 ** 32],
      [0.5, 0],
    ] as const) {
      try {
        queue.pushUsed(head, len);
        expect.unreachable();
      } catch (error) {
        expect(isVmmError(error, 'EINVAL')).toBe(true);
      }
    }
    expect(mock.usedIdx).toBe(0);
  });
});
