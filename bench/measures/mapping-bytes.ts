import { mappingFootprint, objectFootprint } from '@vmmkit/virtio-iommu/testing';
import { expect, type Measure } from '../measure.js';

const COUNT = 1_000_000;

export const mappingBytes: Measure = {
  id: 'mapping-bytes',
  unit: 'bytes/mapping',
  baseline: 'one plain JS object per mapping in an array',
  target: 'value <= 64 (ratio = value / baseline)',
  meets: (r) => r.value <= 64,
  method:
    'Host memory per live mapping at 10^6 mappings, all created by MAP requests (4K each, IOVAs downwards from the top of a 48-bit space, as Linux allocates them) through the request queue of the test harness, 64 per kick: the growth of `heapUsed + arrayBuffers` after forced full GCs, divided by the live mapping count. Baseline, same process: 10^6 `{ start, end, phys, flags }` objects in an array. Lower is better; ratio = value / baseline.',
  run() {
    const { bytesPerMapping: value, live, failures } = mappingFootprint(COUNT);
    expect(live === COUNT && failures === 0, `${COUNT} live mappings, every MAP answered OK`);
    const baselineValue = objectFootprint(COUNT);
    return { value, baselineValue, ratio: value / baselineValue };
  },
};
