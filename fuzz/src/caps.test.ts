import { createTestMemory, MockSplitQueue } from '@vmmkit/core/testing';
import { encodeAttach, encodeMap, Status } from '@vmmkit/virtio-iommu';
import { createVirtioIommuHarness } from '@vmmkit/virtio-iommu/testing';
import { describe, expect, it } from 'vitest';

describe('caps and storms', () => {
  it('domains beyond maxDomains get S_NOMEM and the device does not grow', () => {
    const h = createVirtioIommuHarness({ endpoints: [1, 2, 3, 4, 5].map((id) => ({ id })), maxDomains: 3 });
    const st = h.submitBatch([1, 2, 3, 4, 5].map((e) => encodeAttach({ domain: e, endpoint: e })));
    expect([...st]).toEqual([Status.OK, Status.OK, Status.OK, Status.NOMEM, Status.NOMEM]);
    expect(h.device.domains()).toHaveLength(3);
  });

  it('mappings beyond maxMappingsPerDomain get S_NOMEM, nothing added', () => {
    const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], maxMappingsPerDomain: 16 });
    h.submitBatch([encodeAttach({ domain: 1, endpoint: 1 })]);
    const maps = Array.from({ length: 20 }, (_, i) =>
      encodeMap({
        domain: 1,
        virtStart: i * 0x1000,
        virtEnd: i * 0x1000 + 0xfff,
        physStart: 0x4000_0000,
        flags: 1,
      }),
    );
    const st = h.submitBatch(maps);
    expect([...st].filter((s) => s === Status.OK)).toHaveLength(16);
    expect([...st].slice(16)).toEqual([Status.NOMEM, Status.NOMEM, Status.NOMEM, Status.NOMEM]);
    expect(h.device.mappingCount).toBe(16);
  });

  it('a fault storm with no event buffers is dropped and counted, memory bounded', () => {
    const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], bypass: false, eventBuffers: 0 });
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 200_000; i++) h.translate({ endpoint: 1, iova: BigInt(i * 4096), access: 'read' });
    const stats = h.device.faultStats;
    expect(stats.raised).toBe(200_000);
    expect(stats.dropped).toBe(200_000);
    expect(stats.delivered).toBe(0);
    // Nothing is queued per fault: heap growth stays far below one byte per fault.
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(64 << 20);
  });

  it('a ring whose avail index runs wild makes the queue need a reset; nothing loops', () => {
    const { memory } = createTestMemory({ base: 0x4000_0000, size: 1 << 20 });
    const mock = new MockSplitQueue(memory, 0x4000_1000, 8);
    let broken: string | null = null;
    const queue = mock.deviceQueue({}, (reason) => {
      broken = reason;
    });
    mock.setAvailIdx(0x8000);
    let pops = 0;
    while (queue.pop() !== null && pops < 100) pops++;
    expect(queue.broken).toBe(true);
    expect(broken).not.toBeNull();
    expect(pops).toBeLessThanOrEqual(8);
  });

  it('a descriptor chain of the maximum length (the queue size) is accepted; one longer is a loop', () => {
    const { memory } = createTestMemory({ base: 0x4000_0000, size: 1 << 20 });
    const size = 256;
    const mock = new MockSplitQueue(memory, 0x4000_1000, size);
    for (let i = 0; i < size; i++) {
      mock.writeDescriptor(i, {
        addr: 0x4001_0000 + i * 16,
        len: 16,
        flags: i < size - 1 ? 1 : 0,
        next: i + 1,
      });
    }
    mock.pushAvail(0);
    const queue = mock.deviceQueue();
    const r = queue.pop();
    expect(r?.ok).toBe(true);
    if (r?.ok) expect(r.chain.readableLength).toBe(size * 16);
  });

  it('a 4 GiB chain is refused or bounded: no allocation of its size, no throw', () => {
    const { memory } = createTestMemory({ base: 0x4000_0000, size: 1 << 20 });
    const mock = new MockSplitQueue(memory, 0x4000_1000, 4);
    mock.writeDescriptor(0, { addr: 0x4000_8000, len: 0xffff_ffff, flags: 1, next: 1 });
    mock.writeDescriptor(1, { addr: 0x4000_8000, len: 0xffff_ffff, flags: 0 });
    mock.pushAvail(0);
    const r = mock.deviceQueue().pop();
    expect(r === null || r.ok === false).toBe(true);
  });
});
