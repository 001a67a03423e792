import { DeviceQueue, DriverQueue, splitQueueBytes, splitQueueLayout } from '@vmmkit/core';
import { createTestMemory } from '@vmmkit/core/testing';
import { encodeAttach, encodeMap, encodeUnmap, MapFlag, Status } from '@vmmkit/virtio-iommu';
import { createVirtioIommuHarness } from '@vmmkit/virtio-iommu/testing';
import { alternate, expect, type Measure } from '../measure.js';

const BATCH = 64;

export const mapUnmap: Measure = {
  id: 'map-unmap',
  unit: 'requests/s',
  baseline: 'raw virtqueue add+pop+push+collect, 64 chains per kick (context)',
  target: 'value >= 1,000,000',
  meets: (r) => r.value >= 1_000_000,
  method:
    'The virtio-iommu test harness (inline mode: the device runs inside the QueueNotify write): a batch of 64 MAP requests (4K each, IOVAs near 2^48, READ|WRITE) then a batch of 64 UNMAPs of the same ranges, each request a 2-descriptor chain in a real split virtqueue in guest memory, one kick per batch; every status checked OK. Counts requests (MAP and UNMAP each count one). Baseline, for context only: the same chain shape through a bare `DriverQueue`/`DeviceQueue` pair (add, kick check, pop, pushUsed, interrupt check, collect), 64 per round, no device behind it.',
  run() {
    const h = createVirtioIommuHarness({ endpoints: [{ id: 1 }], bypass: false });
    h.submitBatch([encodeAttach({ domain: 1, endpoint: 1 })]);
    const iova = (i: number) => 0xffff_0000_0000n + BigInt(i) * 0x1000n;
    const maps = Array.from({ length: BATCH }, (_, i) =>
      encodeMap({
        domain: 1,
        virtStart: iova(i),
        virtEnd: iova(i) + 0xfffn,
        physStart: 0x10_0000 + i * 0x1000,
        flags: MapFlag.READ | MapFlag.WRITE,
      }),
    );
    const unmaps = Array.from({ length: BATCH }, (_, i) =>
      encodeUnmap({ domain: 1, virtStart: iova(i), virtEnd: iova(i) + 0xfffn }),
    );
    const statuses = new Uint8Array(BATCH);
    const allOk = () => {
      for (let i = 0; i < BATCH; i++) if (statuses[i] !== Status.OK) return false;
      return true;
    };
    const device = () => {
      h.submitBatch(maps, 4, statuses);
      expect(allOk(), 'every MAP answered OK');
      h.submitBatch(unmaps, 4, statuses);
      expect(allOk(), 'every UNMAP answered OK');
      return 2 * BATCH;
    };

    const t = createTestMemory({ size: 0x40_0000 });
    const layout = splitQueueLayout(t.allocator.alloc(splitQueueBytes(256)), 256);
    const features = { eventIdx: true, indirect: true };
    const driverQueue = new DriverQueue(t.memory, layout, features);
    const deviceQueue = new DeviceQueue(t.memory, layout, features);
    const readable = [{ addr: t.scratch.base, len: 36 }];
    const writable = [{ addr: t.scratch.base + 0x100, len: 4 }];
    let collected = 0;
    const onUsed = () => {
      collected++;
    };
    const bare = () => {
      for (let i = 0; i < BATCH; i++) driverQueue.add(readable, writable, i);
      driverQueue.kickNeeded();
      for (let r = deviceQueue.pop(); r !== null; r = deviceQueue.pop())
        deviceQueue.pushUsed(r.ok ? r.chain.head : r.head, 4);
      deviceQueue.needsInterrupt();
      collected = 0;
      driverQueue.collect(onUsed);
      expect(collected === BATCH, 'every bare chain came back');
      return BATCH;
    };
    const result = alternate(device, bare);
    expect(h.device.mappingCount === 0, 'no mapping left behind');
    return result;
  },
};
