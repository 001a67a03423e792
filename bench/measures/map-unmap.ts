import { createBareQueuePair } from '@vmmkit/core/testing';
import { Status } from '@vmmkit/virtio-iommu';
import { createVirtioIommuHarness, mapUnmapWorkload } from '@vmmkit/virtio-iommu/testing';
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
    const { maps, unmaps } = mapUnmapWorkload(h, BATCH);
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

    const pair = createBareQueuePair();
    const bare = () => pair.round(BATCH);
    const result = alternate(device, bare);
    expect(h.device.mappingCount === 0, 'no mapping left behind');
    return result;
  },
};
