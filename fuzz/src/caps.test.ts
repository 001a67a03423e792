import { createTestMemory, MockSplitQueue } from '@vmmkit/core/testing';
import { encodeAttach, encodeMap, Status } from '@vmmkit/virtio-iommu';
import { createVirtioIommuHarness } from '@vmmkit/virtio-iommu/testing';
import { describe, expect, it } from 'vitest';
import { createRawDevice, RAW_RAM } from './testing/raw-device.js';

describe('caps and storms', () => {
  it('domains beyond maxDomains get S_NOMEM and the device does not grow', () => {
    const h = createVirtioIommuHarness({ endpoints: [1, 2, 3, 4, 5].map((id) => ({ id })), maxDomains: 3 });
    const st = h.submitBatch([1, 2, 3, 4, 5].map((e) => encodeAttach({ domain: e, endpoint: e })));
    expect([...st]).toEqual([Status.OK, Status.OK, Status.OK, Status.NOMEM, Status.NOMEM]);
    expect(h.device.domains()).toHaveLength(3);
  });

  it('at the default cap: 2^16 domains (one endpoint each, as a domain dies with its last), then S_NOMEM', () => {
    const count = 2 ** 16 + 2;
    const h = createVirtioIommuHarness({ endpoints: Array.from({ length: count }, (_, id) => ({ id })) });
    const attaches = Array.from({ length: count }, (_, id) => encodeAttach({ domain: id, endpoint: id }));
    const st = h.submitBatch(attaches);
    const counts = new Map<number, number>();
    for (const s of st) counts.set(s, (counts.get(s) ?? 0) + 1);
    expect(Object.fromEntries(counts)).toEqual({ [Status.OK]: 2 ** 16, [Status.NOMEM]: 2 });
    expect(h.device.domains()).toHaveLength(2 ** 16);
    // A move out of a domain frees it (the domain dies with its last endpoint): room again.
    expect([...h.submitBatch([encodeAttach({ domain: 1, endpoint: 0 })])]).toEqual([Status.OK]);
    expect([...h.submitBatch([encodeAttach({ domain: count - 1, endpoint: count - 1 })])]).toEqual([
      Status.OK,
    ]);
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

  it('at the default cap: 2^20 mappings in one domain, then S_NOMEM', () => {
    const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], memorySize: 8 << 20 });
    h.submitBatch([encodeAttach({ domain: 1, endpoint: 1 })]);
    const total = 2 ** 20 + 2;
    const statuses = new Uint8Array(4096);
    const counts = new Map<number, number>();
    const batch: Uint8Array[] = [];
    for (let first = 0; first < total; first += 4096) {
      batch.length = 0;
      for (let i = first; i < Math.min(total, first + 4096); i++) {
        batch.push(
          encodeMap({
            domain: 1,
            virtStart: i * 0x1000,
            virtEnd: i * 0x1000 + 0xfff,
            physStart: 0x4000_0000,
            flags: 1,
          }),
        );
      }
      h.submitBatch(batch, 4, statuses);
      for (let i = 0; i < batch.length; i++) counts.set(statuses[i]!, (counts.get(statuses[i]!) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({ [Status.OK]: 2 ** 20, [Status.NOMEM]: 2 });
    expect(h.device.mappingCount).toBe(2 ** 20);
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

  it('a chain of exactly 4 GiB is a chain; one byte more is refused (virtio 1.2 §2.7.5.2)', () => {
    const { memory } = createTestMemory({ base: 0x4000_0000, size: 64 << 20 });
    const mock = new MockSplitQueue(memory, 0x4000_1000, 256);
    const segment = 32 << 20;
    const build = (extra: number) => {
      for (let i = 0; i < 128; i++) {
        const len = i === 127 ? segment + extra : segment;
        mock.writeDescriptor(i, { addr: 0x4100_0000, len: len >>> 0, flags: i < 127 ? 1 : 0, next: i + 1 });
      }
      mock.pushAvail(0);
    };
    const queue = mock.deviceQueue();
    build(0);
    const exact = queue.pop();
    expect(exact?.ok).toBe(true);
    if (exact?.ok) expect(exact.chain.readableLength).toBe(2 ** 32);
    queue.pushUsed(0, 0);
    build(1);
    const over = queue.pop();
    expect(over).toMatchObject({ ok: false, error: 'chain-too-long' });
  });

  it('a request chain longer than 4 GiB is returned with used length 0; the device keeps serving', () => {
    const raw = createRawDevice({ memorySize: 64 << 20 });
    const request = encodeAttach({ domain: 1, endpoint: 1 });
    const at = RAW_RAM + 0x2_0000;
    raw.memory.write(at, request);
    const huge = Array.from({ length: 128 }, () => ({ addr: at + 0x1000, len: 32 << 20, write: true }));
    raw.requests.addChain([{ addr: at, len: request.length }, ...huge]);
    raw.kick();
    expect(raw.requests.usedSince(0)).toEqual([{ id: 0, len: 0 }]);
    expect(raw.resets).toEqual([]);
    // The next, ordinary request is answered.
    raw.memory.fill(at + 0x1000, 4, 0xa5);
    raw.requests.addChain(
      [
        { addr: at, len: request.length },
        { addr: at + 0x1000, len: 4, write: true },
      ],
      129,
    );
    raw.kick();
    expect(raw.requests.usedSince(1)).toEqual([{ id: 129, len: 4 }]);
    expect(raw.memory.read(at + 0x1000, 1)[0]).toBe(Status.OK);
  });
});
