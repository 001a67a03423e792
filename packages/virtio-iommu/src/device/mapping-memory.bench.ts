import { afterAll, bench, describe } from 'vitest';
import { mappingFootprint, objectFootprint } from '../testing/index.js';

/**
 * Host memory per live mapping at 10^6 mappings, all created with MAP requests through the
 * request queue. Counted: the JS heap plus the typed arrays behind it (the mapping pool),
 * measured after a forced GC. Baseline in the same run: 10^6 mappings as the plainest JS
 * representation, one `{ start, end, phys, flags }` object each in an array.
 */

const COUNT = 1_000_000;
const device: number[] = [];
const objects: number[] = [];
let failedMaps = 0;

function mapMillion(): void {
  const { bytesPerMapping, live, failures } = mappingFootprint(COUNT);
  if (live !== COUNT) throw new Error(`${live} live mappings instead of ${COUNT}`);
  device.push(bytesPerMapping);
  failedMaps += failures;
}

function objectsMillion(): void {
  objects.push(objectFootprint(COUNT));
}

/**
 * The bench runner may call each body more than once; a later run can see ArrayBuffers of the
 * previous one still being released, so the median is what is reported.
 */
function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[sorted.length >> 1]!;
}

describe('host memory per mapping at 10^6 live mappings', () => {
  bench('baseline: 10^6 plain objects', objectsMillion, {
    iterations: 1,
    warmupIterations: 0,
    time: 0,
    warmupTime: 0,
  });
  bench('10^6 MAPs through the request queue', mapMillion, {
    iterations: 1,
    warmupIterations: 0,
    time: 0,
    warmupTime: 0,
  });
});

afterAll(() => {
  console.info(
    [
      `virtio-iommu device: ${COUNT} live mappings, ${median(device).toFixed(1)} bytes/mapping (heap + typed arrays; median of ${device.length}), ${failedMaps} failed MAPs`,
      `baseline, one JS object per mapping in an array: ${median(objects).toFixed(1)} bytes/mapping (median of ${objects.length})`,
    ].join('\n'),
  );
});
